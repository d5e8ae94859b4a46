/** How registered models are shown (Models screen rows, memory per precision) and accuracies with n, ties and interval. */
import type { RewardModel, Backbone, Sae as SaeRow } from '../../engine/store';
import { architectureFor, readModelConfig, precisionMemoryLine } from '../../engine/backbone';
import { wilsonInterval } from '../../engine/sparserm/metrics';
import type { AccuracyView, ModelInfo } from '../contract';
import { isDemoMeta, scalar } from './shared';

export function backboneInfo(b: Backbone): ModelInfo {
  const m = b.metadata;
  return {
    id: b.id,
    kind: 'checkpoint',
    name: b.name,
    path: b.path ?? '',
    isDemo: isDemoMeta(m, b.path),
    details: { family: architectureFor(b.architecture ?? '')?.label ?? null, architecture: b.architecture, layers: scalar(m.numLayers), hidden: scalar(m.hiddenSize), ...memoryDetails(b.path) },
  };
}
/** Models screen: what each precision needs for all blocks of a checkpoint, and what fits this machine (issue 13). */
export function memoryDetails(dir: string | null | undefined): Record<string, string> {
  try {
    const c = readModelConfig(dir ?? '');
    const line = precisionMemoryLine(c, c.numLayers - 1);
    return { [`memory (all ${c.numLayers} blocks)`]: line.detail };
  } catch {
    return {};
  }
}
export function saeInfo(s: SaeRow): ModelInfo {
  const m = s.metadata;
  return {
    id: s.id,
    kind: 'sae',
    name: s.name,
    path: s.path ?? '',
    isDemo: isDemoMeta(m, s.path),
    details: { layer: s.layer, dSae: s.dSae, dIn: scalar(m.dIn), format: scalar(m.format), llamaScope: m.llamaScope === true },
  };
}
export function rewardModelInfo(r: RewardModel): ModelInfo {
  return {
    id: r.id,
    kind: 'reward-model',
    name: r.name,
    path: r.folder,
    isDemo: r.demo,
    details: { layer: r.layer, dataset: scalar(r.metrics.datasetName) },
  };
}

/** The train job's evaluation as kept in reward_models.metrics_json (older rows lack n / ties / ci95 / overlap). */
export interface StoredEval {
  n?: number;
  accuracy?: number;
  correct?: number;
  ties?: number;
  ci95?: [number, number];
  auc?: number;
  evaluatedOn?: string;
  overlap?: { prompts: number | null; pairs: number | null };
  baselines?: Array<{ name: string; accuracy: number; n?: number; correct?: number; ties?: number; ci95?: [number, number]; auc?: number; params?: number; trainN?: number }>;
}

/** An accuracy for the UI with its n, ties and 95 % Wilson interval (recomputed from accuracy·n for older rows). */
export function accuracyView(accuracy: number | null, n: number | null, ties?: number, ci95?: [number, number]): AccuracyView {
  const a = accuracy !== null && Number.isFinite(accuracy) ? accuracy : null;
  const ci = ci95 && ci95.every(Number.isFinite) ? ci95 : a !== null && n ? wilsonInterval(Math.round(a * n), n) : null;
  return { accuracy: a, n, ties: ties ?? null, ci95: ci };
}
