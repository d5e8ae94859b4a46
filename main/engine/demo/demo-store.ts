import { importFile, importLabels, sha256File } from '../data';
import type { Store } from '../store';
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
export async function ensureDemoDataset(store: Store, file: string, opts: { name?: string; signal?: AbortSignal } = {}): Promise<DemoDatasetResult> {
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
  const r = await importFile(store, file, { dataset: name, format: 'standard', strict: true, signal: opts.signal });
  return { datasetId: r.datasetId, name, pairs: r.imported, action };
}

/** Loads the kit's latent labels so explanations show them (upsert: re-running adds nothing). */
export async function ensureDemoLabels(store: Store, kit: DemoKit): Promise<number> {
  const r = await importLabels(store, kit.labels, { model: kit.modelId, sae: kit.saeId });
  return r.imported;
}
