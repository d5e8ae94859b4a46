/**
 * One identity per model in the store. A checkpoint folder or an SAE is registered once (by the Models screen, the
 * demo kit or a first training run) and every later path reuses that row: checkpoints are matched by folder, SAEs by
 * file (a trained model's SAE by content hash, preferring the same file). Rows a registration finds under another id (e.g. an earlier CLI run keyed them by content hash) are
 * merged into it, so the Models screen never lists the same model twice.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { loadCheckpoint } from '../backbone';
import { llamaScopeNeuronpediaIds, loadSae } from '../sae';
import type { Backbone, Sae as SaeRow, Store } from '../store';
import type { RewardModelManifest } from './manifest';

const samePath = (a: string | null, b: string) => !!a && path.resolve(a) === path.resolve(b);

/** The registered row of a checkpoint folder, if any. */
export function findBackbone(store: Store, dir: string): Backbone | undefined {
  return store.models.backbones().find((b) => samePath(b.path, dir));
}

/** The registered row of an SAE with this content hash (the one at `file` first: one SAE may sit in two layouts). */
export function findSae(store: Store, hash: string, file?: string): SaeRow | undefined {
  const rows = store.models.saes().filter((s) => s.hash === hash);
  return (file ? rows.find((s) => samePath(s.path, file)) : undefined) ?? rows[0];
}

const pathId = (prefix: string, p: string) => `${prefix}-${crypto.createHash('sha256').update(path.resolve(p)).digest('hex').slice(0, 12)}`;

export interface RegisterOptions {
  /** Fixed id (the demo kit's); otherwise the row already registered for this model keeps its id. */
  id?: string;
  name?: string;
  demo?: boolean;
}

/** Registers a checkpoint folder (validated config read), reusing its existing row. */
export async function registerCheckpoint(store: Store, dir: string, opts: RegisterOptions = {}): Promise<Backbone> {
  const ck = await loadCheckpoint(dir);
  try {
    const existing = findBackbone(store, dir);
    const id = opts.id ?? existing?.id ?? pathId('ckpt', dir);
    const row = store.models.upsertBackbone({
      id,
      name: opts.name ?? (existing && existing.id === id ? existing.name : path.basename(path.resolve(dir))),
      path: path.resolve(dir),
      architecture: ck.config.hfArchitecture,
      metadata: { ...existing?.metadata, hiddenSize: ck.config.hiddenSize, numLayers: ck.config.numLayers, vocabSize: ck.config.vocabSize, demo: opts.demo ?? existing?.metadata.demo === true },
    });
    for (const b of store.models.backbones()) if (b.id !== id && samePath(b.path, dir)) store.models.mergeBackbone(b.id, id);
    return row;
  } finally {
    ck.close();
  }
}

/** Registers an SAE (npz file or SAELens folder), reusing the row of the same file. */
export async function registerSae(
  store: Store,
  p: string,
  opts: RegisterOptions & { layer?: number; neuronpedia?: { modelId: string; saeId: string } } = {},
): Promise<SaeRow> {
  const sae = await loadSae(p);
  const existing = store.models.saes().find((s) => samePath(s.path, p));
  const id = opts.id ?? existing?.id ?? sae.id;
  // A Llama Scope SAE of Llama-3.1-8B knows its Neuronpedia ids, so its label exports attach without --labels.
  const neuronpedia = opts.neuronpedia ?? existing?.metadata.neuronpedia ?? llamaScopeNeuronpediaIds(sae);
  const row = store.models.upsertSae({
    id,
    name: opts.name ?? (existing && existing.id === id ? existing.name : sae.id),
    path: path.resolve(p),
    hash: sae.hash,
    backboneId: existing?.backboneId ?? null,
    layer: opts.layer ?? sae.hookLayer ?? existing?.layer ?? null,
    dSae: sae.dSae,
    metadata: { ...existing?.metadata, dIn: sae.dIn, format: sae.format, llamaScope: sae.encoding !== undefined, demo: opts.demo ?? existing?.metadata.demo === true, ...(neuronpedia ? { neuronpedia } : {}) },
  });
  for (const s of store.models.saes()) if (s.id !== id && samePath(s.path, p)) store.models.mergeSae(s.id, id);
  return row;
}

/**
 * Registers a trained model folder in the store. Its backbone and SAE rows are the registered ones (explicit ids,
 * else the checkpoint folder's / SAE hash's row); only a model nobody registered gets a new row, keyed by content hash.
 */
export function registerRewardModel(
  store: Store,
  modelDir: string,
  manifest: RewardModelManifest,
  opts: { demo?: boolean; backboneId?: string; saeId?: string } = {},
): void {
  const manifestHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(modelDir, 'manifest.json'))).digest('hex');
  let backboneId = opts.backboneId ?? findBackbone(store, manifest.backbone.checkpoint)?.id;
  if (!backboneId) {
    backboneId = manifest.backbone.contentHash;
    store.models.upsertBackbone({ id: backboneId, name: path.basename(manifest.backbone.checkpoint), path: manifest.backbone.checkpoint, configHash: manifest.backbone.contentHash });
  }
  let saeId = opts.saeId ?? findSae(store, manifest.sae.hash, manifest.sae.path)?.id;
  if (!saeId) {
    saeId = manifest.sae.hash;
    store.models.upsertSae({ id: saeId, name: manifest.sae.id, path: manifest.sae.path, hash: manifest.sae.hash, backboneId, layer: manifest.backbone.layer, dSae: manifest.sae.dSae });
  }
  store.models.upsertRewardModel({
    id: manifest.id,
    name: manifest.id,
    folder: modelDir,
    manifestHash,
    backboneId,
    saeId,
    layer: manifest.backbone.layer,
    metrics: manifest.metrics,
    demo: opts.demo,
  });
}
