/**
 * What a reward model folder says, cached per process: its manifest, the labels of its latents and its training result
 * (listModels, listRuns, the train job and explanations share one instance).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Store, RewardModel } from '../../engine/store';
import { RewardModelManifest } from '../../engine/sparserm/manifest';
import type { TrainResult } from '../contract';
import { accuracyView, type StoredEval } from './model-info';
import { dedupeByPath } from './shared';

const samePath = (a: string | null, b: string) => !!a && path.resolve(a) === path.resolve(b);
function sha256File(file: string): string | null {
  try {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

/**
 * What a reward model was trained with, as the Models list's details (issue 14: "Review next" retrains with exactly
 * these). checkpointId / saeId: the registered rows (one per path, as listed) holding the content the manifest
 * recorded, else null; never another checkpoint or SAE.
 */
export interface TrainedWith {
  checkpointId: string | null;
  checkpointPath: string;
  saeId: string | null;
  saePath: string;
  layer: number;
  k: number;
  loss: 'margin' | 'bt';
  precision: string;
  maxTokens: number;
  saeEncoding: 'saelens' | 'authors' | null;
}

export type RewardModelViews = ReturnType<typeof createRewardModelViews>;

export function createRewardModelViews(store: Store) {
  const manifests = new Map<string, RewardModelManifest | null>();
  /** The model folder's manifest (cached; null when the folder is gone or unreadable). */
  function manifestOf(rm: RewardModel): RewardModelManifest | null {
    if (!manifests.has(rm.folder)) {
      try {
        manifests.set(rm.folder, RewardModelManifest.parse(JSON.parse(fs.readFileSync(path.join(rm.folder, 'manifest.json'), 'utf8'))));
      } catch {
        manifests.set(rm.folder, null);
      }
    }
    return manifests.get(rm.folder)!;
  }
  function labelsFor(rm: RewardModel, indices: number[]): Map<number, string> {
    const m = manifestOf(rm);
    // The model's own label set, else the one later attached to its SAE (labels imported after training).
    const saeRow = m ? store.models.saes().find((x) => x.hash === m.sae.hash && x.metadata.neuronpedia) : undefined;
    const set = m?.sae.labels ?? (saeRow?.metadata.neuronpedia as { modelId: string; saeId: string } | undefined);
    return set ? store.labels.best(set.modelId, set.saeId, indices) : new Map();
  }

  function trainView(rm: RewardModel): TrainResult | null {
    const m = manifestOf(rm);
    if (!m) return null;
    let curve: { epoch: number; trainLoss: number; valLoss?: number; valAccuracy?: number }[] = [];
    try {
      curve = JSON.parse(fs.readFileSync(path.join(rm.folder, 'curve.json'), 'utf8'));
    } catch {
      // a model folder without its curve still shows its metrics
    }
    const ev = rm.metrics.eval as StoredEval | undefined;
    const labels = labelsFor(rm, m.selected.map((s) => s.index));
    return {
      runId: rm.id,
      rewardModelId: rm.id,
      isDemo: rm.demo,
      layer: m.backbone.layer,
      k: m.k,
      loss: m.training.loss,
      curve: curve.map((c) => ({ epoch: c.epoch, trainLoss: c.trainLoss, valLoss: c.valLoss ?? null, valAccuracy: c.valAccuracy ?? null })),
      heldOutAccuracy: ev?.accuracy ?? m.metrics.test.accuracy ?? null,
      heldOut: ev
        ? { ...accuracyView(ev.accuracy ?? null, ev.n ?? null, ev.ties, ev.ci95), overlap: ev.overlap?.pairs ?? null }
        : { ...accuracyView(m.metrics.test.accuracy, m.metrics.test.n), overlap: null },
      baselines: (ev?.baselines ?? []).filter((b) => Number.isFinite(b.accuracy)).map((b) => ({ name: b.name, ...accuracyView(b.accuracy, b.n ?? null, b.ties, b.ci95), accuracy: b.accuracy })),
      selected: m.selected.map((s) => ({ latent: s.index, sign: s.side, label: labels.get(s.index) ?? null, muChosen: s.muW, muRejected: s.muL })),
    };
  }

  /**
   * The registered checkpoint / SAE a model was trained with. Candidates in order: the row it was registered under
   * (the one the user picked), a row at the manifest's path, a row with the manifest's content hash. A checkpoint
   * row counts only while its folder still has the manifest's config.json (hashing every weight here would take
   * minutes on an 8B model; the score job still checks the full content hash); an SAE row only while its recorded
   * content hash is the manifest's and its file is there.
   */
  function trainedWith(rm: RewardModel): TrainedWith | null {
    const m = manifestOf(rm);
    if (!m) return null;
    // Listed rows only (one per path, as listModels shows them): an older database's duplicate row of the model's
    // own folder is matched through its path.
    const rank = <T extends { id: string; path: string | null }>(rows: T[], own: T | undefined, file: string, sameContent: (r: T) => boolean) =>
      rows
        .map((r) => ({ r, at: own && (r.id === own.id || (own.path && samePath(r.path, own.path))) ? 0 : samePath(r.path, file) ? 1 : sameContent(r) ? 2 : 3 }))
        .filter((x) => x.at < 3)
        .sort((x, y) => x.at - y.at)
        .map((x) => x.r);
    const config = m.backbone.files?.['config.json'];
    const ckpt = rank(dedupeByPath(store.models.backbones()), rm.backboneId ? store.models.backbone(rm.backboneId) : undefined, m.backbone.checkpoint, (b) => b.configHash === m.backbone.contentHash).find((b) => {
      const got = b.path ? sha256File(path.join(b.path, 'config.json')) : null;
      return got !== null && (config === undefined || got === config);
    });
    const sae = rank(dedupeByPath(store.models.saes()), rm.saeId ? store.models.sae(rm.saeId) : undefined, m.sae.path, (x) => x.hash === m.sae.hash).find((x) => x.hash === m.sae.hash && !!x.path && fs.existsSync(x.path));
    return {
      checkpointId: ckpt?.id ?? null,
      checkpointPath: m.backbone.checkpoint,
      saeId: sae?.id ?? null,
      saePath: m.sae.path,
      layer: m.backbone.layer,
      k: m.k,
      loss: m.training.loss,
      precision: m.backbone.precision ?? 'f32',
      maxTokens: m.maxTokens,
      saeEncoding: m.sae.encoding ?? null,
    };
  }

  return { manifestOf, labelsFor, trainView, trainedWith };
}
