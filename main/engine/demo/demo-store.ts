import { importFile, importLabels, sha256File } from '../data';
import { registerCheckpoint, registerSae } from '../sparserm/registry';
import type { Backbone, Sae, Store } from '../store';
import { DEMO_LABEL, type DemoKit } from './kit';

/** The demo dataset's name in the store. */
export const DEMO_DATASET = 'demo-truthfulqa';

export interface DemoDatasetResult {
  datasetId: number;
  name: string;
  pairs: number;
  /** 'imported' the first time (or after replacing a broken copy), 'reused' when the same file is already there. */
  action: 'imported' | 'reused' | 'replaced';
}

/**
 * Puts the demo pairs into the store idempotently: the dataset is reused when it already holds this very file
 * (same sha256, same pair count) — keeping any decisions a curator made on it — and replaced when it is
 * incomplete or came from another file. Never a second copy.
 */
export async function ensureDemoDataset(
  store: Store,
  file: string,
  opts: { name?: string; signal?: AbortSignal; onProgress?: (p: { bytesRead: number; totalBytes: number; imported: number }) => void } = {},
): Promise<DemoDatasetResult> {
  const name = opts.name ?? DEMO_DATASET;
  const sha = await sha256File(file);
  const existing = store.datasets.byName(name);
  let action: DemoDatasetResult['action'] = 'imported';
  if (existing) {
    const imports = store.datasets.imports(existing.id);
    const pairs = store.pairs.count({ datasetId: existing.id });
    const expected = imports.find((i) => i.fileSha256 === sha);
    if (expected && imports.length === 1 && pairs === expected.imported && pairs > 0) {
      return { datasetId: existing.id, name, pairs, action: 'reused' };
    }
    store.datasets.delete(existing.id);
    action = 'replaced';
  }
  store.datasets.create(name, { demo: true, description: `TruthfulQA pairs of the demo kit (${DEMO_LABEL}); evaluation data: do not use to train a language model` });
  const r = await importFile(store, file, { dataset: name, format: 'standard', strict: true, signal: opts.signal, onProgress: opts.onProgress });
  return { datasetId: r.datasetId, name, pairs: r.imported, action };
}

/** Loads the kit's latent labels so explanations show them (upsert: re-running adds nothing). */
export async function ensureDemoLabels(store: Store, kit: DemoKit): Promise<number> {
  const r = await importLabels(store, kit.labels, { model: kit.modelId, sae: kit.saeId });
  return r.imported;
}

/**
 * Registers the kit's checkpoint and SAE under the kit's ids (kit.modelId / kit.saeId), the one identity the CLI
 * demo and the app share: reward models trained on the kit reuse these rows, and rows an older run made for the
 * same files (keyed by content hash) are merged into them.
 */
export async function ensureDemoModels(store: Store, kit: DemoKit): Promise<{ checkpoint: Backbone; sae: Sae }> {
  const checkpoint = await registerCheckpoint(store, kit.checkpoint, { id: kit.modelId, demo: true, name: 'demo Gemma-2 (tiny)' });
  const sae = await registerSae(store, kit.sae, {
    id: kit.saeId,
    demo: true,
    name: `demo SAE L${kit.layer} (${kit.dSae} latents)`,
    layer: kit.layer,
    neuronpedia: { modelId: kit.modelId, saeId: kit.saeId },
  });
  return { checkpoint, sae };
}
