import { InputError } from '../errors';
import type { Db } from './db';
import { BackboneRowSchema, RewardModelRowSchema, SaeRowSchema, now, type Backbone, type RewardModel, type Sae } from './rows';

/** Backbones, SAEs and reward models known to the store. Ids are chosen by the caller (e.g. a content hash). */
export class ModelsRepo {
  constructor(private readonly db: Db) {}

  upsertBackbone(b: { id: string; name: string; path?: string | null; configHash?: string | null; architecture?: string | null; metadata?: Record<string, unknown> }): Backbone {
    this.db
      .prepare(
        `INSERT INTO backbones(id, name, path, config_hash, architecture, metadata_json, created_at) VALUES (?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET name=excluded.name, path=excluded.path, config_hash=excluded.config_hash,
           architecture=excluded.architecture, metadata_json=excluded.metadata_json`,
      )
      .run(b.id, b.name, b.path ?? null, b.configHash ?? null, b.architecture ?? null, JSON.stringify(b.metadata ?? {}), now());
    return this.backbone(b.id)!;
  }

  backbone(id: string): Backbone | undefined {
    const r = this.db.prepare('SELECT * FROM backbones WHERE id = ?').get(id);
    return r ? BackboneRowSchema.parse(r) : undefined;
  }

  backbones(): Backbone[] {
    return this.db.prepare('SELECT * FROM backbones ORDER BY created_at').all().map((r) => BackboneRowSchema.parse(r));
  }

  upsertSae(s: { id: string; name: string; path?: string | null; hash?: string | null; backboneId?: string | null; layer?: number | null; dSae?: number | null; metadata?: Record<string, unknown> }): Sae {
    this.db
      .prepare(
        `INSERT INTO saes(id, name, path, hash, backbone_id, layer, d_sae, metadata_json, created_at) VALUES (?,?,?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET name=excluded.name, path=excluded.path, hash=excluded.hash, backbone_id=excluded.backbone_id,
           layer=excluded.layer, d_sae=excluded.d_sae, metadata_json=excluded.metadata_json`,
      )
      .run(s.id, s.name, s.path ?? null, s.hash ?? null, s.backboneId ?? null, s.layer ?? null, s.dSae ?? null, JSON.stringify(s.metadata ?? {}), now());
    return this.sae(s.id)!;
  }

  sae(id: string): Sae | undefined {
    const r = this.db.prepare('SELECT * FROM saes WHERE id = ?').get(id);
    return r ? SaeRowSchema.parse(r) : undefined;
  }

  saes(): Sae[] {
    return this.db.prepare('SELECT * FROM saes ORDER BY created_at').all().map((r) => SaeRowSchema.parse(r));
  }

  /** Folds backbone row `from` into `into` (same checkpoint registered twice): references move, `from` goes. */
  mergeBackbone(from: string, into: string): void {
    if (from === into) return;
    this.db.transaction(() => {
      this.db.prepare('UPDATE reward_models SET backbone_id = ? WHERE backbone_id = ?').run(into, from);
      this.db.prepare('UPDATE saes SET backbone_id = ? WHERE backbone_id = ?').run(into, from);
      this.db.prepare('DELETE FROM backbones WHERE id = ?').run(from);
    })();
  }

  /** Folds SAE row `from` into `into` (same SAE registered twice): reward models follow, `from` goes. */
  mergeSae(from: string, into: string): void {
    if (from === into) return;
    this.db.transaction(() => {
      this.db.prepare('UPDATE reward_models SET sae_id = ? WHERE sae_id = ?').run(into, from);
      this.db.prepare('DELETE FROM saes WHERE id = ?').run(from);
    })();
  }

  /** Registers (or refreshes) a reward-model folder. Re-registering the same id updates metrics/folder. */
  upsertRewardModel(m: {
    id: string;
    name: string;
    folder: string;
    manifestHash: string;
    backboneId?: string | null;
    saeId?: string | null;
    layer?: number | null;
    metrics?: Record<string, unknown>;
    demo?: boolean;
  }): RewardModel {
    this.db
      .prepare(
        `INSERT INTO reward_models(id, name, folder, manifest_hash, backbone_id, sae_id, layer, metrics_json, demo, created_at)
         VALUES (?,?,?,?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET name=excluded.name, folder=excluded.folder, manifest_hash=excluded.manifest_hash,
           backbone_id=excluded.backbone_id, sae_id=excluded.sae_id, layer=excluded.layer, metrics_json=excluded.metrics_json, demo=excluded.demo`,
      )
      .run(
        m.id,
        m.name,
        m.folder,
        m.manifestHash,
        m.backboneId ?? null,
        m.saeId ?? null,
        m.layer ?? null,
        JSON.stringify(m.metrics ?? {}),
        m.demo ? 1 : 0,
        now(),
      );
    return this.rewardModel(m.id)!;
  }

  rewardModel(id: string): RewardModel | undefined {
    const r = this.db.prepare('SELECT * FROM reward_models WHERE id = ?').get(id);
    return r ? RewardModelRowSchema.parse(r) : undefined;
  }

  requireRewardModel(id: string): RewardModel {
    const m = this.rewardModel(id);
    if (!m) throw new InputError({ field: 'reward model', expected: 'a registered reward model id', got: `"${id}"` });
    return m;
  }

  rewardModels(): RewardModel[] {
    return this.db.prepare('SELECT * FROM reward_models ORDER BY created_at, id').all().map((r) => RewardModelRowSchema.parse(r));
  }

  deleteRewardModel(id: string): void {
    const used = (this.db.prepare('SELECT count(*) AS n FROM scoring_runs WHERE reward_model_id = ?').get(id) as { n: number }).n;
    if (used > 0) throw new InputError({ field: 'reward model', expected: 'a reward model with no scoring runs (delete is refused to keep provenance)', got: `${used} runs` });
    this.db.prepare('DELETE FROM reward_models WHERE id = ?').run(id);
  }
}
