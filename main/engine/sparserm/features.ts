/**
 * Feature extraction as a resumable job: per response, the pooled resid_post(L) representation z (mean over the
 * response tokens, or the last one; BOS never included) and its active SAE latents (JumpReLU of z).
 *
 * Content-addressed cache under cacheDirs.features():
 *   <ns = sha256(backbone content hash, layer, pooling)>/z/              key = sha256(exact token ids, pooled span)
 *   <ns>/latents-<SAE hash>/                                              same key → sparse active latents of z
 * so re-training (other K / loss / seed), re-scoring or evaluating never runs the backbone for text it has seen,
 * and a new SAE on the same backbone only re-encodes z. Batches are committed as they finish (AppendStore), so a
 * killed run resumes where it stopped.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { loadCheckpoint, openBackbone, type BackboneSession, type Precision } from '../backbone';
import { loadTokenizer, type ChatEncoding } from '../backbone/tokenizer';
import { InputError, throwIfAborted } from '../errors';
import type { EpRequest } from '../runtime/ort';
import { cacheDirs } from '../paths';
import { checkSaeForBackbone, SaeEncoder, type Sae } from '../sae';
import { AppendStore, decodeSparse, encodeSparse, f32Bytes } from './feature-store';
import type { FeatureTable } from './fit';
import type { EpochStats } from './head';
import { LENGTH_POLICY_VERSION, resolveMaxTokens, truncateEncoding, type Truncation } from './length-policy';
import { encodePromptResponse, PROMPT_ENCODING_VERSION } from './prompt-encoding';
import { openPrefixShared, type PrefixSharedBackbone } from './prefix-share';

export type Pooling = 'mean' | 'last';

export interface ResponseText {
  prompt: string;
  response: string;
}

export interface Progress {
  phase: string;
  done: number;
  total: number;
  /** Seconds left, estimated from the rate so far. */
  etaS?: number;
  /** Phase 'train': this epoch's losses and accuracies (the live training curve; the same values as curve.json). */
  stats?: EpochStats;
}

export interface ExtractOptions {
  checkpoint: string;
  layer: number;
  /** Without an SAE only z is extracted (scoring needs nothing else); table.latents is then empty. */
  sae?: Sae;
  pooling: Pooling;
  ep?: EpRequest;
  /** Backbone graph precision (default f32). Part of the cache namespace: z at another precision is other data. */
  precision?: Precision;
  /** Root of the feature cache (default cacheDirs.features()). */
  cacheRoot?: string;
  /** Responses per committed backbone batch (default 64). */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onWarning?: (message: string) => void;
  /** Run the backbone and SAE sessions in ORT worker threads (servers / Electron main keep their event loop). */
  worker?: boolean;
  /**
   * Leave out responses whose text the tokenizer refuses (e.g. a conversation the chat template raises on)
   * and list them in `rejected`, instead of failing the whole call. Their z rows stay zero, their latents empty.
   */
  skipBadText?: boolean;
  /** Max tokens per response sequence (length-policy.ts; default 1,024, never above max_position_embeddings). */
  maxTokens?: number;
  /**
   * Run a prompt shared by several responses once (prefix-share.ts: its keys/values are reused for each response);
   * equal to the unshared path within 1e-4, same cache keys. Default true; false = every sequence whole
   * (`--no-prefix-share`, for comparison).
   */
  prefixShare?: boolean;
  /**
   * Stream z instead of returning it: rows are read from the cache `rows` at a time into one reused buffer and handed
   * to `each` (row order; rows without features are zeros), and table.z comes back empty. For scoring, whose only use
   * of z is the head: materialising 100k × 2304 floats is 879 MiB of fresh memory, and on a VM faulting it in costs
   * seconds before any work (bench/README.md). Not with an SAE (its latents are computed from the whole table).
   */
  zChunks?: ZChunks;
}

export interface ZChunks {
  rows: number;
  each: (first: number, count: number, z: Float32Array) => Promise<void>;
}

export interface RejectedResponse {
  /** Index into the responses. */
  index: number;
  /** What the tokenizer refused ('prompt' or 'response') and why. */
  field?: string;
  expected: string;
  got?: string;
}

export interface ExtractResult {
  table: FeatureTable;
  /** Chat encodings of the responses that had to be tokenized (text not seen before); undefined for the rest. */
  encodings: Array<ChatEncoding | undefined>;
  backboneHash: string;
  /** Tokens that went through the backbone in this call (0 when everything was cached). */
  tokensComputed: number;
  responsesComputed: number;
  responsesCached: number;
  warnings: string[];
  /** With `skipBadText`: the responses left out (never cached, never run). */
  rejected: RejectedResponse[];
  /** Per response: what the length policy cut (undefined: nothing, or rejected). Known for cached text too. */
  truncation: Array<Truncation | undefined>;
  /** The max-token setting that was applied. */
  maxTokens: number;
  /** Per response: control-token strings ("<start_of_turn>", "<unk>", …) in its prompt + response, encoded as
   *  ordinary text (0 for rejected responses). Known for cached text too. */
  controlStrings: number[];
}

function sha(s: string): string {
  // crypto.hash (Node ≥ 20.12) skips the Hash object: ~3× faster on the 100k-short-strings re-scoring path.
  return crypto.hash ? crypto.hash('sha256', s, 'hex') : crypto.createHash('sha256').update(s).digest('hex');
}

export function featureKey(e: Pick<ChatEncoding, 'ids' | 'poolStart' | 'poolEnd'>): string {
  return sha(`${e.ids.join(',')}|${e.poolStart}:${e.poolEnd}`);
}

/** Pools [poolStart, poolEnd) of a [T × H] hidden-state matrix; BOS (position 0) is never part of the span. */
export function poolHidden(h: Float32Array, hiddenSize: number, start: number, end: number, pooling: Pooling): Float32Array {
  const s = Math.max(start, 1);
  if (end <= s) throw new Error(`empty pooling span [${start}, ${end})`);
  const z = new Float32Array(hiddenSize);
  if (pooling === 'last') {
    z.set(h.subarray((end - 1) * hiddenSize, end * hiddenSize));
    return z;
  }
  const acc = new Float64Array(hiddenSize);
  for (let t = s; t < end; t++) for (let k = 0; k < hiddenSize; k++) acc[k] += h[t * hiddenSize + k];
  for (let k = 0; k < hiddenSize; k++) z[k] = acc[k] / (end - s);
  return z;
}

/** sha256 of the tokenizer files: the text → token-ids mapping depends on nothing else. */
function tokenizerHash(checkpoint: string): string {
  const h = crypto.createHash('sha256');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const p = path.join(checkpoint, f);
    h.update(`${f}:`);
    if (fs.existsSync(p)) h.update(fs.readFileSync(p));
    h.update(';');
  }
  return h.digest('hex');
}

function eta(start: number, done: number, total: number): number | undefined {
  if (done === 0) return undefined;
  const rate = done / ((Date.now() - start) / 1000);
  return rate > 0 ? (total - done) / rate : undefined;
}

/** Reads the cached z of `keys` in chunks of rows through one reused buffer (ExtractOptions.zChunks). */
async function streamZ(zStore: AppendStore, keys: Array<string | undefined>, hiddenSize: number, chunks: ZChunks, signal?: AbortSignal): Promise<void> {
  const rows = Math.max(1, Math.floor(chunks.rows));
  const buf = new Float32Array(Math.min(rows, keys.length) * hiddenSize);
  for (let first = 0; first < keys.length; first += rows) {
    throwIfAborted(signal);
    const count = Math.min(rows, keys.length - first);
    const view = buf.subarray(0, count * hiddenSize);
    const items: Array<{ key: string; at: number }> = [];
    for (let i = first; i < first + count; i++) {
      const k = keys[i];
      if (k !== undefined) items.push({ key: k, at: (i - first) * hiddenSize * 4 });
      else view.fill(0, (i - first) * hiddenSize, (i - first + 1) * hiddenSize);
    }
    zStore.readInto(items, new Uint8Array(view.buffer, view.byteOffset, view.byteLength), hiddenSize * 4);
    await chunks.each(first, count, view);
  }
}

export async function extractFeatures(responses: ResponseText[], opts: ExtractOptions): Promise<ExtractResult> {
  const { signal, onProgress } = opts;
  const ckpt = await loadCheckpoint(opts.checkpoint);
  let backboneHash: string;
  let hiddenSize: number;
  let maxTokens: number;
  try {
    ckpt.validateThrough(opts.layer);
    maxTokens = resolveMaxTokens(opts.maxTokens, ckpt.config, path.join(opts.checkpoint, 'config.json'));
    hiddenSize = ckpt.config.hiddenSize;
    backboneHash = await ckpt.contentHash(opts.layer);
  } finally {
    ckpt.close();
  }
  const { warnings } = opts.sae ? checkSaeForBackbone(opts.sae, { checkpoint: opts.checkpoint, hiddenSize, layer: opts.layer }) : { warnings: [] as string[] };
  warnings.forEach((w) => opts.onWarning?.(w));

  const root = opts.cacheRoot ?? cacheDirs.features();
  // f32 keeps the namespace it always had (existing caches stay valid); other precisions get their own.
  const precision = opts.precision ?? 'f32';
  const ns = sha(JSON.stringify({ v: 1, backbone: backboneHash, layer: opts.layer, pooling: opts.pooling, ...(precision !== 'f32' ? { precision } : {}) }));
  const nsDir = path.join(root, ns.slice(0, 32));
  fs.mkdirSync(nsDir, { recursive: true });
  const meta = path.join(nsDir, 'meta.json');
  if (!fs.existsSync(meta)) fs.writeFileSync(meta, JSON.stringify({ backboneHash, layer: opts.layer, pooling: opts.pooling, hiddenSize }) + '\n');

  // Text → feature key, per tokenizer (its files' hash): text seen before needs no tokenization at all, which is
  // what makes re-scoring 100k cached responses fast. The feature key itself is always the exact token ids.
  const tokHash = tokenizerHash(opts.checkpoint);
  // One text index per max-token setting: the same text maps to other (cut) ids under another setting. An entry is
  // `featureKey` or `featureKey promptCut responseCut originalLength` (space-separated) when the text was cut.
  const textStore = AppendStore.open(path.join(nsDir, `text-${tokHash.slice(0, 32)}-max${maxTokens}-lp${LENGTH_POLICY_VERSION}-enc${PROMPT_ENCODING_VERSION}`));
  const truncation = new Array<Truncation | undefined>(responses.length);
  const textKeys = responses.map((r) => sha(`${r.prompt.length}:${r.prompt}\u0000${r.response}`));
  const keys = new Array<string | undefined>(responses.length);
  const rejected: RejectedResponse[] = [];
  const encodings = new Array<ChatEncoding | undefined>(responses.length);
  const newText: Array<[string, string]> = [];
  let tokenizer: Awaited<ReturnType<typeof loadTokenizer>> | undefined;
  // Control-string counts per text (a pure function of text and tokenizer; only non-zero ones are stored), apart from
  // the text index so that cached text reports them without being tokenized again.
  const controlStore = AppendStore.open(path.join(nsDir, `control-${tokHash.slice(0, 32)}-enc${PROMPT_ENCODING_VERSION}`));
  const newControl: Array<[string, string]> = [];
  const controlStrings = new Array<number>(responses.length).fill(0);
  for (let i = 0; i < responses.length; i++) {
    const known = textStore.getInline(textKeys[i]);
    if (known) {
      controlStrings[i] = Number(controlStore.getInline(textKeys[i]) ?? 0);
      const [key, p, r, t] = known.split(' ');
      keys[i] = key;
      if (p !== undefined) truncation[i] = { prompt: Number(p), response: Number(r), original: Number(t) };
      continue;
    }
    tokenizer ??= await loadTokenizer(opts.checkpoint);
    try {
      encodings[i] = encodePromptResponse(tokenizer, responses[i].prompt, responses[i].response);
    } catch (err) {
      // Only a problem with this text is skipped; one that names a file (no chat template) concerns every row.
      if (!opts.skipBadText || !(err instanceof InputError) || err.details.file !== undefined) throw err;
      rejected.push({ index: i, field: err.details.field, expected: err.details.expected, got: err.details.got });
      continue;
    }
    // Cut to the max-token setting before the key: the feature key is always the ids the backbone really sees.
    const cut = truncateEncoding(encodings[i]!, maxTokens, tokenizer.specialIds);
    encodings[i] = cut.encoding;
    truncation[i] = cut.truncation;
    keys[i] = featureKey(encodings[i]!);
    controlStrings[i] = encodings[i]!.controlStrings;
    if (controlStrings[i] > 0) newControl.push([textKeys[i], String(controlStrings[i])]);
  }
  controlStore.putInline(newControl);
  controlStore.close();
  onProgress?.({ phase: 'tokenize', done: responses.length, total: responses.length });
  const zStore = AppendStore.open(path.join(nsDir, 'z'));
  const sae = opts.sae;
  const latStore = sae ? AppendStore.open(path.join(nsDir, `latents-${sae.hash.slice(0, 32)}`)) : undefined;

  let tokensComputed = 0;
  let backbone: BackboneSession | undefined;
  let shared: PrefixSharedBackbone | undefined;
  let encoder: SaeEncoder | undefined;
  try {
    // 1) z for responses not in the cache, one committed batch at a time.
    const todo: number[] = [];
    const seen = new Set<string>();
    keys.forEach((k, i) => {
      if (k !== undefined && !zStore.has(k) && !seen.has(k)) {
        seen.add(k);
        todo.push(i);
      }
    });
    const batchSize = opts.batchSize ?? 64;
    const started = Date.now();
    for (let b = 0; b < todo.length; b += batchSize) {
      throwIfAborted(signal);
      const batch = todo.slice(b, b + batchSize);
      const seqs = batch.map((i) => encodings[i]!.ids);
      let hidden: Float32Array[];
      if (opts.prefixShare === false) {
        backbone ??= await openBackbone({ checkpoint: opts.checkpoint, layer: opts.layer, precision, ep: opts.ep, signal, worker: opts.worker });
        hidden = await backbone.hidden(seqs, { signal });
      } else {
        // Only rows from poolStart on are computed: the pooled span never reaches into the shared prompt.
        shared ??= await openPrefixShared({ checkpoint: opts.checkpoint, layer: opts.layer, precision, ep: opts.ep, signal, worker: opts.worker });
        hidden = await shared.hiddenFrom(seqs, batch.map((i) => encodings[i]!.poolStart), { signal });
      }
      const records: Array<[string, Uint8Array]> = batch.map((i, j) => {
        const e = encodings[i]!;
        tokensComputed += e.ids.length;
        return [keys[i]!, f32Bytes(poolHidden(hidden[j], hiddenSize, e.poolStart, e.poolEnd, opts.pooling))];
      });
      zStore.putMany(records);
      const done = Math.min(b + batchSize, todo.length);
      onProgress?.({ phase: 'backbone', done, total: todo.length, etaS: eta(started, done, todo.length) });
    }

    // Text index entries only for text whose features are now stored (a cancelled run records nothing dangling).
    const seenText = new Set<string>();
    encodings.forEach((e, i) => {
      if (e && zStore.has(keys[i]!) && !seenText.has(textKeys[i])) {
        seenText.add(textKeys[i]);
        const t = truncation[i];
        newText.push([textKeys[i], t ? `${keys[i]!} ${t.prompt} ${t.response} ${t.original}` : keys[i]!]);
      }
    });
    textStore.putInline(newText);

    const streamed = opts.zChunks !== undefined && !sae;
    const table: FeatureTable = { hiddenSize, n: responses.length, z: new Float32Array(streamed ? 0 : responses.length * hiddenSize), latents: [] };
    if (streamed) await streamZ(zStore, keys, hiddenSize, opts.zChunks!, signal);
    else {
      // One pass in file order straight into the table (feature-store.ts readInto): the re-scoring hot path.
      const zItems: Array<{ key: string; at: number }> = [];
      keys.forEach((k, i) => k !== undefined && zItems.push({ key: k, at: i * hiddenSize * 4 }));
      zStore.readInto(zItems, new Uint8Array(table.z.buffer, table.z.byteOffset, table.z.byteLength), hiddenSize * 4);
    }

    // 2) active latents of z for this SAE.
    if (!sae || !latStore) {
      return { table, encodings, backboneHash, tokensComputed, responsesComputed: todo.length, responsesCached: responses.length - todo.length - rejected.length, warnings, rejected, truncation, maxTokens, controlStrings };
    }
    const latTodo: number[] = [];
    const latSeen = new Set<string>();
    keys.forEach((k, i) => {
      if (k !== undefined && !latStore.has(k) && !latSeen.has(k)) {
        latSeen.add(k);
        latTodo.push(i);
      }
    });
    const encBatch = 256;
    for (let b = 0; b < latTodo.length; b += encBatch) {
      throwIfAborted(signal);
      encoder ??= await SaeEncoder.open(sae, { ep: opts.ep, worker: opts.worker });
      const batch = latTodo.slice(b, b + encBatch);
      const x = new Float32Array(batch.length * hiddenSize);
      batch.forEach((i, j) => x.set(table.z.subarray(i * hiddenSize, (i + 1) * hiddenSize), j * hiddenSize));
      const rows = await encoder.encodeSparse(x, batch.length, { signal });
      latStore.putMany(batch.map((i, j) => [keys[i]!, encodeSparse(Int32Array.from(rows[j], (r) => r[0]), Float32Array.from(rows[j], (r) => r[1]))]));
      onProgress?.({ phase: 'sae', done: Math.min(b + encBatch, latTodo.length), total: latTodo.length });
    }
    table.latents = keys.map((k) => (k === undefined ? { idx: new Int32Array(0), val: new Float32Array(0) } : decodeSparse(latStore.get(k)!)));
    return {
      table,
      encodings,
      backboneHash,
      tokensComputed,
      responsesComputed: todo.length,
      responsesCached: responses.length - todo.length - rejected.length,
      warnings,
      rejected,
      truncation,
      maxTokens,
      controlStrings,
    };
  } finally {
    zStore.close();
    textStore.close();
    latStore?.close();
    await backbone?.close();
    await shared?.close();
    await encoder?.close();
  }
}
