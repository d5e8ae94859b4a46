/**
 * What a reward model folder says, cached per process: its manifest, the labels of its latents and its training result
 * (listModels, listRuns, the train job and explanations share one instance).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Store, RewardModel } from '../../engine/store';
import { RewardModelManifest } from '../../engine/sparserm/manifest';
import type { TrainResult } from '../contract';
import { accuracyView, type StoredEval } from './model-info';

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

  return { manifestOf, labelsFor, trainView };
}
