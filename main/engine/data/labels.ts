import path from 'node:path';

import { CancelledError, InputError } from '../errors';
import type { NewLatentLabel, SkippedRow, Store } from '../store';
import { SourceReader } from './source';

export interface LabelImportOptions {
  /** Model id for rows without one (or to override it), e.g. "gemma-2-9b-it". */
  model?: string;
  /** SAE id (Neuronpedia "layer"/source, e.g. "31-gemmascope-res-16k") for rows without one (or to override it). */
  sae?: string;
  signal?: AbortSignal;
}

export interface LabelImportResult {
  file: string;
  imported: number;
  skipped: SkippedRow[];
  sets: { modelId: string; saeId: string; labels: number }[];
}

const pick = (o: Record<string, unknown>, keys: string[]): unknown => {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
};

/**
 * Reads one Neuronpedia explanation (export API / bulk dump row): {modelId, layer, index, description,
 * explanationModelName?, scores?/score?}. Also accepts snake_case and SAELens-style names.
 */
export function parseNeuronpediaRow(row: unknown, opts: LabelImportOptions): NewLatentLabel | string {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return 'expected a JSON object (a Neuronpedia explanation)';
  const o = row as Record<string, unknown>;
  const modelId = opts.model ?? pick(o, ['modelId', 'model_id', 'model']);
  const saeId = opts.sae ?? pick(o, ['layer', 'saeId', 'sae_id', 'sae', 'source']);
  const index = pick(o, ['index', 'featureIndex', 'feature', 'latent', 'latent_index']);
  const description = pick(o, ['description', 'explanation', 'label']);
  if (typeof modelId !== 'string' || !modelId) return 'missing field "modelId": expected the model id (or pass --model)';
  if (typeof saeId !== 'string' || !saeId) return 'missing field "layer": expected the SAE source id, e.g. "31-gemmascope-res-16k" (or pass --sae)';
  const idx = typeof index === 'string' && /^\d+$/.test(index) ? Number(index) : index;
  if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0) return `field "index": expected a latent index (integer ≥ 0), got ${JSON.stringify(index)}`;
  if (typeof description !== 'string') return `field "description": expected a string, got ${description === undefined ? 'nothing' : typeof description}`;
  const scoresRaw = pick(o, ['score', 'scores']);
  let score: number | null = null;
  if (typeof scoresRaw === 'number') score = scoresRaw;
  else if (Array.isArray(scoresRaw)) {
    const v = scoresRaw.map((s) => (typeof s === 'number' ? s : typeof s === 'object' && s ? (s as { value?: unknown }).value : undefined)).find((v) => typeof v === 'number');
    if (typeof v === 'number') score = v;
  }
  const em = pick(o, ['explanationModelName', 'explanation_model', 'explanationModel']);
  return { modelId, saeId, latentIndex: idx, description: description.trim(), explanationModel: typeof em === 'string' ? em : null, score, raw: undefined };
}

/** Imports Neuronpedia explanations (JSON array, JSONL, optionally gzip) in one transaction. */
export async function importLabels(store: Store, file: string, opts: LabelImportOptions = {}): Promise<LabelImportResult> {
  const abs = path.resolve(file);
  const reader = new SourceReader(abs);
  const skipped: SkippedRow[] = [];
  const batch: NewLatentLabel[] = [];
  let n = 0;
  for await (const rec of reader.records()) {
    if ('error' in rec) {
      skipped.push({ line: rec.line, reason: rec.error });
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(rec.text);
    } catch (e) {
      skipped.push({ line: rec.line, reason: `broken JSON: ${(e as Error).message}` });
      continue;
    }
    const l = parseNeuronpediaRow(value, opts);
    if (typeof l === 'string') skipped.push({ line: rec.line, reason: l });
    else batch.push({ ...l, sourceFile: abs });
    if (++n % 5000 === 0) {
      await new Promise<void>((r) => setImmediate(r));
      if (opts.signal?.aborted) throw new CancelledError();
    }
  }
  if (batch.length === 0) {
    throw new InputError({ file: abs, expected: 'Neuronpedia explanations ({modelId, layer, index, description})', got: skipped.length ? `no valid rows (first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : 'no rows' });
  }
  // Labels are small (≤ ~1M short strings for the largest SAEs); one transaction keeps the set all-or-nothing.
  const imported = store.labels.upsertMany(batch);
  const sets = new Map<string, { modelId: string; saeId: string; labels: number }>();
  for (const l of batch) {
    const k = `${l.modelId}\u0000${l.saeId}`;
    const s = sets.get(k) ?? { modelId: l.modelId, saeId: l.saeId, labels: 0 };
    s.labels++;
    sets.set(k, s);
  }
  return { file: abs, imported, skipped, sets: [...sets.values()] };
}
