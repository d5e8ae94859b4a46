/**
 * Built backbone graphs, cached on disk by (checkpoint content hash, layer, precision, graph format) under
 * `cacheDirs.graphs()`, so a restart reuses them. A graph folder is built under a temporary name and renamed into
 * place when complete: concurrent builders (two CLI runs, CLI + app) never see or corrupt a half-built graph.
 * A lock folder (atomic mkdir, heartbeat by mtime) makes a second builder wait for the first instead of building the
 * same many-GB graph twice; a lock without heartbeat for LOCK_STALE_MS is a crashed builder's and is taken over.
 * Should the lock be bypassed anyway, the loser of the rename race discards its copy and uses the winner's.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { CancelledError, throwIfAborted } from '../errors';
import { cacheDirs } from '../paths';
import type { Checkpoint } from './checkpoint';
import { buildDecoderGraph, GRAPH_FORMAT, type BuiltGraph, type Precision } from './decoder-graph';
import { buildKvGraph, KV_GRAPH_FORMAT, kvVariant, lastBlock, type KvGraphSpec } from './kv-graph';
import { parsePrecision, PRECISIONS, QUANT_ACCURACY_LEVEL } from './linear-weights';

const manifestSchema = z.object({
  format: z.string(),
  checkpointHash: z.string(),
  checkpointDir: z.string(),
  architecture: z.string(),
  layer: z.number().int().nonnegative(),
  precision: z.enum(PRECISIONS),
  /** KV-cache graphs (kv-graph.ts): which variant; absent for the truncated resid_post graph. */
  variant: z.string().optional(),
  hiddenSize: z.number().int().positive(),
  numLayers: z.number().int().positive(),
  nodeCount: z.number().int().nonnegative(),
  createdAt: z.string(),
  buildMs: z.number().nonnegative(),
  files: z.record(z.string(), z.number().int().nonnegative()),
});
export type GraphManifest = z.infer<typeof manifestSchema>;

export interface EnsureGraphOptions {
  layer: number;
  precision?: Precision;
  /** Default: cacheDirs.graphs(). */
  cacheDir?: string;
  /** The checkpoint hash for this layer if already known (else computed). */
  checkpointHash?: string;
  onProgress?: (event: { phase: 'hash' | 'build'; done: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface EnsuredGraph {
  graphPath: string;
  dir: string;
  reused: boolean;
  manifest: GraphManifest;
}

/** Temp folders older than this are leftovers of crashed builds. */
const STALE_TMP_MS = 24 * 3600 * 1000;
/** A build lock not touched for this long belongs to a builder that died. */
const LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 200;
const HEARTBEAT_MS = 5_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(new CancelledError());
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Takes the build lock of a graph folder, or returns the graph if another builder completes it meanwhile. */
async function lockOrWait(lock: string, dir: string, signal?: AbortSignal): Promise<GraphManifest | 'locked'> {
  for (;;) {
    throwIfAborted(signal);
    try {
      fs.mkdirSync(lock);
      return 'locked';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const done = readManifest(dir);
    if (done) return done;
    let age = 0;
    try {
      age = Date.now() - fs.statSync(lock).mtimeMs;
    } catch {
      continue; // released just now: try again
    }
    if (age > LOCK_STALE_MS) {
      fs.rmSync(lock, { recursive: true, force: true });
      continue;
    }
    await sleep(LOCK_POLL_MS, signal);
  }
}

export function graphDirName(checkpointHash: string, layer: number, precision: Precision, variant?: string): string {
  const fmt = crypto.createHash('sha256').update(variant ? KV_GRAPH_FORMAT : GRAPH_FORMAT).digest('hex').slice(0, 8);
  // Quantized graphs also differ by MatMulNBits accuracy_level (an env knob for benches): part of the key.
  const p = precision === 'int8' || precision === 'int4' ? `${precision}a${QUANT_ACCURACY_LEVEL}` : precision;
  return `${checkpointHash.slice(0, 24)}-${variant ?? `L${layer}`}-${p}-${fmt}`;
}

function readManifest(dir: string): GraphManifest | undefined {
  try {
    const m = manifestSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')));
    for (const [f, size] of Object.entries(m.files)) if (fs.statSync(path.join(dir, f)).size !== size) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

/** Reuse touches the manifest, so `pruneGraphCache({ unusedForDays })` can tell idle graphs apart. */
function markUsed(dir: string): void {
  try {
    const now = new Date();
    fs.utimesSync(path.join(dir, 'manifest.json'), now, now);
  } catch {
    /* read-only cache: pruning by age just sees the build time */
  }
}

function cleanStaleTemps(cacheDir: string): void {
  try {
    for (const e of fs.readdirSync(cacheDir)) {
      if (!e.startsWith('.tmp-')) continue;
      const p = path.join(cacheDir, e);
      if (Date.now() - fs.statSync(p).mtimeMs > STALE_TMP_MS) fs.rmSync(p, { recursive: true, force: true });
    }
  } catch {
    /* best effort */
  }
}

export async function ensureBackboneGraph(ckpt: Checkpoint, opts: EnsureGraphOptions): Promise<EnsuredGraph> {
  const precision = parsePrecision(opts.precision);
  ckpt.validateThrough(opts.layer);
  return ensureGraph(ckpt, opts, { layer: opts.layer, precision, hashLayer: opts.layer, format: GRAPH_FORMAT }, (dir, metadata, onProgress) =>
    buildDecoderGraph(ckpt, { layer: opts.layer, precision, dir, metadata, onProgress }),
  );
}

export interface EnsureKvGraphOptions extends Omit<EnsureGraphOptions, 'layer' | 'precision'>, KvGraphSpec {}

/**
 * The KV-cache decoder graph (kv-graph.ts) of a spec, cached like the truncated graph. Key: the content hash of
 * what it reads (blocks 0..L for a truncated graph — the same hash as the resid_post graph of L; every tensor for
 * full depth), the variant (depth, logits, capture layer), the precision and KV_GRAPH_FORMAT.
 */
export async function ensureKvGraph(ckpt: Checkpoint, opts: EnsureKvGraphOptions): Promise<EnsuredGraph> {
  const last = lastBlock(ckpt, opts);
  ckpt.validateThrough(last);
  const spec: KvGraphSpec = { depth: opts.depth, logits: opts.logits, captureLayer: opts.captureLayer, precision: opts.precision };
  const hashLayer = opts.depth === 'full' ? undefined : last;
  return ensureGraph(ckpt, opts, { layer: last, precision: opts.precision, hashLayer, format: KV_GRAPH_FORMAT, variant: kvVariant(spec) }, (dir, metadata, onProgress) =>
    buildKvGraph(ckpt, { ...spec, dir, metadata, onProgress }),
  );
}

interface GraphKey {
  layer: number;
  precision: Precision;
  /** Layer whose content hash keys the graph; undefined = the whole checkpoint. */
  hashLayer: number | undefined;
  format: string;
  variant?: string;
}

async function ensureGraph(
  ckpt: Checkpoint,
  opts: Omit<EnsureGraphOptions, 'layer' | 'precision'>,
  key: GraphKey,
  build: (dir: string, metadata: Record<string, string>, onProgress: (done: number, total: number) => void) => Promise<BuiltGraph>,
): Promise<EnsuredGraph> {
  const { precision } = key;
  const cacheDir = opts.cacheDir ?? cacheDirs.graphs();
  const hash =
    opts.checkpointHash ??
    (await ckpt.contentHash(key.hashLayer, { signal: opts.signal, onProgress: (done, total) => opts.onProgress?.({ phase: 'hash', done, total }) }));
  throwIfAborted(opts.signal);
  const dir = path.join(cacheDir, graphDirName(hash, key.layer, precision, key.variant));
  const existing = readManifest(dir);
  if (existing) {
    markUsed(dir);
    return { graphPath: path.join(dir, 'model.onnx'), dir, reused: true, manifest: existing };
  }

  fs.mkdirSync(cacheDir, { recursive: true });
  cleanStaleTemps(cacheDir);
  const lock = path.join(cacheDir, `.lock-${path.basename(dir)}`);
  const got = await lockOrWait(lock, dir, opts.signal);
  if (got !== 'locked') return { graphPath: path.join(dir, 'model.onnx'), dir, reused: true, manifest: got };
  const tmp = path.join(cacheDir, `.tmp-${path.basename(dir)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  let beat = Date.now();
  try {
    // Someone may have finished between our first look and taking the lock.
    const finished = readManifest(dir);
    if (finished) return { graphPath: path.join(dir, 'model.onnx'), dir, reused: true, manifest: finished };
    const t0 = performance.now();
    const built = await build(tmp, { checkpointHash: hash }, (done, total) => {
      throwIfAborted(opts.signal);
      if (Date.now() - beat > HEARTBEAT_MS) {
        beat = Date.now();
        const now = new Date();
        fs.utimesSync(lock, now, now); // heartbeat: we are alive, don't take over
      }
      opts.onProgress?.({ phase: 'build', done, total });
    });
    const c = ckpt.config;
    const manifest: GraphManifest = {
      format: key.format,
      checkpointHash: hash,
      checkpointDir: ckpt.dir,
      architecture: c.arch.id,
      layer: key.layer,
      precision,
      ...(key.variant ? { variant: key.variant } : {}),
      hiddenSize: c.hiddenSize,
      numLayers: c.numLayers,
      nodeCount: built.nodeCount,
      createdAt: new Date().toISOString(),
      buildMs: Math.round(performance.now() - t0),
      files: Object.fromEntries(['model.onnx', 'model.onnx.data'].map((f) => [f, fs.statSync(path.join(tmp, f)).size])),
    };
    // The manifest is written last: a folder with a valid manifest is a complete graph.
    fs.writeFileSync(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2));
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') throw err;
      // Another builder finished first. Use theirs if it is complete; else replace a broken leftover.
      const theirs = readManifest(dir);
      if (theirs) {
        fs.rmSync(tmp, { recursive: true, force: true });
        return { graphPath: path.join(dir, 'model.onnx'), dir, reused: true, manifest: theirs };
      }
      const broken = `${tmp}-broken`;
      fs.renameSync(dir, broken);
      fs.renameSync(tmp, dir);
      fs.rmSync(broken, { recursive: true, force: true });
    }
    return { graphPath: path.join(dir, 'model.onnx'), dir, reused: false, manifest };
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

export interface PruneResult {
  removed: Array<{ name: string; reason: string; sizeBytes: number }>;
  kept: number;
  freedBytes: number;
}

function folderBytes(p: string): number {
  try {
    const st = fs.statSync(p);
    if (!st.isDirectory()) return st.size;
    return fs.readdirSync(p).reduce((a, n) => a + folderBytes(path.join(p, n)), 0);
  } catch {
    return 0;
  }
}

/**
 * Reclaims graph-cache space. Always removes: folders without a valid manifest (half-written), graphs of an older
 * GRAPH_FORMAT (never used again), graphs whose source checkpoint folder is gone, and leftovers of crashed builds
 * (temp folders and locks idle for over a minute). With `unusedForDays`, graphs not built or reused for that long;
 * with `all`, every graph. Active builds are left alone.
 */
export function pruneGraphCache(opts: { cacheDir?: string; all?: boolean; unusedForDays?: number; dryRun?: boolean } = {}): PruneResult {
  const cacheDir = opts.cacheDir ?? cacheDirs.graphs();
  const result: PruneResult = { removed: [], kept: 0, freedBytes: 0 };
  if (!fs.existsSync(cacheDir)) return result;
  const currentFmt = graphDirName('0'.repeat(64), 0, 'f32').split('-').pop()!;
  const currentKvFmt = graphDirName('0'.repeat(64), 0, 'f32', 'kv').split('-').pop()!;
  for (const name of fs.readdirSync(cacheDir)) {
    const p = path.join(cacheDir, name);
    let reason: string | undefined;
    if (name.startsWith('.tmp-') || name.startsWith('.lock-')) {
      const idle = Date.now() - fs.statSync(p).mtimeMs;
      // A live build touches its lock every few seconds; its temp folder gets a new file per tensor.
      if (idle > LOCK_STALE_MS && !(name.startsWith('.tmp-') && Date.now() - newestMtime(p) < LOCK_STALE_MS)) reason = 'leftover of an interrupted build';
    } else {
      const m = readManifest(p);
      if (opts.all) reason = 'all graphs requested';
      else if (!m) reason = 'incomplete (no valid manifest)';
      else if (m.variant ? !name.endsWith(`-${currentKvFmt}`) || m.format !== KV_GRAPH_FORMAT : !name.endsWith(`-${currentFmt}`) || m.format !== GRAPH_FORMAT) {
        reason = `older graph format (${m.format})`;
      }
      else if (!fs.existsSync(m.checkpointDir)) reason = `source checkpoint ${m.checkpointDir} no longer exists`;
      else if (opts.unusedForDays !== undefined) {
        const idleDays = (Date.now() - fs.statSync(path.join(p, 'manifest.json')).mtimeMs) / 86_400_000;
        if (idleDays > opts.unusedForDays) reason = `unused for ${idleDays.toFixed(1)} days`;
      }
    }
    if (!reason) {
      result.kept++;
      continue;
    }
    const sizeBytes = folderBytes(p);
    if (!opts.dryRun) fs.rmSync(p, { recursive: true, force: true });
    result.removed.push({ name, reason, sizeBytes });
    result.freedBytes += sizeBytes;
  }
  return result;
}

function newestMtime(dir: string): number {
  try {
    return Math.max(fs.statSync(dir).mtimeMs, ...fs.readdirSync(dir).map((n) => fs.statSync(path.join(dir, n)).mtimeMs));
  } catch {
    return 0;
  }
}
