import type { Db } from './db';
import { LatentLabelRowSchema, now, type LatentLabel } from './rows';

export interface NewLatentLabel {
  modelId: string;
  saeId: string;
  latentIndex: number;
  description: string;
  explanationModel?: string | null;
  score?: number | null;
  sourceFile?: string | null;
  raw?: unknown;
}

/** Human-readable latent labels (Neuronpedia explanations) keyed by (model, SAE, latent index). */
export class LabelsRepo {
  constructor(private readonly db: Db) {}

  /** Inserts or refreshes labels in one transaction; returns how many rows were written. */
  upsertMany(labels: Iterable<NewLatentLabel>): number {
    const stmt = this.db.prepare(
      `INSERT INTO latent_labels(model_id, sae_id, latent_index, description, explanation_model, score, source_file, raw_json, imported_at)
       VALUES (?,?,?,?,?,?,?,?,?)
       ON CONFLICT(model_id, sae_id, latent_index, description) DO UPDATE SET explanation_model=excluded.explanation_model,
         score=excluded.score, source_file=excluded.source_file, raw_json=excluded.raw_json, imported_at=excluded.imported_at`,
    );
    let n = 0;
    const ts = now();
    this.db.transaction(() => {
      for (const l of labels) {
        stmt.run(l.modelId, l.saeId, l.latentIndex, l.description, l.explanationModel ?? null, l.score ?? null, l.sourceFile ?? null, l.raw === undefined ? null : JSON.stringify(l.raw), ts);
        n++;
      }
    })();
    return n;
  }

  /**
   * Labels for the given latents; the best one per index first (highest score, then most recent).
   * Returns a Map index → labels (indices without a label are absent).
   */
  lookup(modelId: string, saeId: string, indices: readonly number[]): Map<number, LatentLabel[]> {
    const out = new Map<number, LatentLabel[]>();
    if (indices.length === 0) return out;
    const rows = this.db
      .prepare(
        `SELECT model_id, sae_id, latent_index, description, explanation_model, score, source_file, imported_at FROM latent_labels
         WHERE model_id = ? AND sae_id = ? AND latent_index IN (SELECT value FROM json_each(?))
         ORDER BY latent_index, score IS NULL, score DESC, imported_at DESC`,
      )
      .all(modelId, saeId, JSON.stringify([...new Set(indices)]));
    for (const r of rows) {
      const l = LatentLabelRowSchema.parse(r);
      const list = out.get(l.latentIndex) ?? [];
      list.push(l);
      out.set(l.latentIndex, list);
    }
    return out;
  }

  /** Best label text per index (convenience for explanations). */
  best(modelId: string, saeId: string, indices: readonly number[]): Map<number, string> {
    const out = new Map<number, string>();
    for (const [k, v] of this.lookup(modelId, saeId, indices)) out.set(k, v[0]!.description);
    return out;
  }

  /** Which (model, sae) label sets exist, with counts. */
  sets(): { modelId: string; saeId: string; latents: number; labels: number }[] {
    return this.db
      .prepare('SELECT model_id AS modelId, sae_id AS saeId, count(DISTINCT latent_index) AS latents, count(*) AS labels FROM latent_labels GROUP BY model_id, sae_id ORDER BY model_id, sae_id')
      .all() as { modelId: string; saeId: string; latents: number; labels: number }[];
  }
}
