/**
 * Checkpoint content hash: it keys the graph cache and, downstream, the feature cache and reward-model manifests.
 *
 * What it covers (format "sparserm-ckpt-v2"), sha256 over, in order:
 *   - the architecture id and every config.json number the forward pass reads (the validated ModelConfig: sizes,
 *     heads, head_dim, eps, rope theta, query scale, softcap, window), as canonical JSON — so metadata-only edits
 *     of config.json (transformers_version, torch_dtype, comments) don't invalidate caches, while any change that
 *     alters the math does;
 *   - for each covered tensor, in the order given (embedding, then block 0's tensors, block 1's, ...):
 *     name, dtype, shape and sha256 of the tensor's raw bytes.
 * For a layer L the covered tensors are exactly those resid_post(L) depends on (embedding + blocks 0..L), so the
 * hash changes whenever any weight that can change the activations changes, and is shared by two checkpoints that
 * agree on everything resid_post(L) reads. It does not depend on file names, sharding or tensor order in files.
 *
 * Cost: the tensor digests need one full read of those bytes, done once: they are memoised per shard on disk in
 * `<cache>/checkpoint-digests/` keyed by (real path, size, mtime) — any rewrite of the shard invalidates them —
 * and in memory for the process. Reads are streamed in 16 MiB chunks (memory stays flat) and async (the event
 * loop keeps running).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { throwIfAborted } from '../errors';
import { cacheHome } from '../paths';
import type { TensorRef } from './checkpoint';

const FORMAT = 'sparserm-ckpt-v2';
const CHUNK = 16 * 1024 * 1024;

interface ShardMemo {
  path: string;
  size: number;
  mtimeMs: number;
  /** tensor name → "begin:end:sha256hex" */
  digests: Record<string, string>;
}

const memory = new Map<string, ShardMemo>();

function memoFile(real: string): string {
  const id = crypto.createHash('sha256').update(real).digest('hex').slice(0, 32);
  return path.join(cacheHome(), 'checkpoint-digests', `${id}.json`);
}

function loadMemo(file: string): ShardMemo {
  const real = fs.realpathSync(file);
  const st = fs.statSync(real);
  const fresh = (m: ShardMemo | undefined) => m && m.path === real && m.size === st.size && m.mtimeMs === st.mtimeMs;
  const cached = memory.get(real);
  if (fresh(cached)) return cached!;
  let onDisk: ShardMemo | undefined;
  try {
    onDisk = JSON.parse(fs.readFileSync(memoFile(real), 'utf8')) as ShardMemo;
  } catch {
    onDisk = undefined;
  }
  const memo = fresh(onDisk) && onDisk && typeof onDisk.digests === 'object' ? onDisk : { path: real, size: st.size, mtimeMs: st.mtimeMs, digests: {} };
  memory.set(real, memo);
  return memo;
}

function saveMemo(memo: ShardMemo): void {
  const file = memoFile(memo.path);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(memo));
    fs.renameSync(tmp, file); // atomic: concurrent writers only lose each other's entries (recomputed later)
  } catch {
    // A read-only cache only costs a recomputation next time.
  }
}

async function tensorDigest(t: TensorRef, onBytes: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const h = crypto.createHash('sha256');
  const fh = await fs.promises.open(t.file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(CHUNK, Math.max(1, t.end - t.begin)));
    for (let pos = t.begin; pos < t.end; ) {
      throwIfAborted(signal);
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, t.end - pos), pos);
      if (bytesRead === 0) throw new Error(`${t.file}: unexpected end of file in tensor ${t.name}`);
      h.update(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      pos += bytesRead;
      onBytes(bytesRead);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

export async function checkpointContentHash(
  /** Canonical description of the numbers the forward pass reads (see hashedConfig in checkpoint.ts). */
  config: Record<string, string | number | null | object>,
  tensors: TensorRef[],
  opts: { onProgress?: (doneBytes: number, totalBytes: number) => void; signal?: AbortSignal } = {},
): Promise<string> {
  const memos = new Map<string, ShardMemo>();
  for (const t of tensors) if (!memos.has(t.file)) memos.set(t.file, loadMemo(t.file));
  const total = tensors.reduce((a, t) => a + (t.end - t.begin), 0);
  let done = 0;
  const dirty = new Set<ShardMemo>();
  const h = crypto.createHash('sha256');
  h.update(`${FORMAT}\n`);
  h.update(JSON.stringify(Object.fromEntries(Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1)))));
  h.update('\n');
  for (const t of tensors) {
    const memo = memos.get(t.file)!;
    const key = `${t.begin}:${t.end}:`;
    let entry = memo.digests[t.name];
    if (!entry || !entry.startsWith(key)) {
      try {
        entry = key + (await tensorDigest(t, (n) => opts.onProgress?.((done += n), total), opts.signal));
      } catch (err) {
        for (const m of dirty) saveMemo(m); // keep what was already hashed
        throw err;
      }
      memo.digests[t.name] = entry;
      dirty.add(memo);
    } else {
      done += t.end - t.begin;
      opts.onProgress?.(done, total);
    }
    h.update(`${t.name}\t${t.dtype}\t${t.shape.join(',')}\t${entry.slice(key.length)}\n`);
  }
  for (const m of dirty) saveMemo(m);
  return h.digest('hex');
}

/** Drops the in-process memo (tests simulate a restart with it). */
export function clearContentHashMemory(): void {
  memory.clear();
}
