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
import { buildDecoderGraph, GRAPH_FORMAT, type Precision } from './decoder-graph';

const manifestSchema = z.object({
  format: z.string(),
  checkpointHash: z.string(),
  checkpointDir: z.string(),
  architecture: z.string(),
  layer: z.number().int().nonnegative(),
  precision: z.enum(['f32', 'f16']),
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

export function graphDirName(checkpointHash: string, layer: number, precision: Precision): string {
  const fmt = crypto.createHash('sha256').update(GRAPH_FORMAT).digest('hex').slice(0, 8);
  return `${checkpointHash.slice(0, 24)}-L${layer}-${precision}-${fmt}`;
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
  const precision = opts.precision ?? 'f32';
  const cacheDir = opts.cacheDir ?? cacheDirs.graphs();
  ckpt.validateThrough(opts.layer);
  const hash =
    opts.checkpointHash ??
    (await ckpt.contentHash(opts.layer, { signal: opts.signal, onProgress: (done, total) => opts.onProgress?.({ phase: 'hash', done, total }) }));
  throwIfAborted(opts.signal);
  const dir = path.join(cacheDir, graphDirName(hash, opts.layer, precision));
  const existing = readManifest(dir);
  if (existing) return { graphPath: path.join(dir, 'model.onnx'), dir, reused: true, manifest: existing };

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
    const built = await buildDecoderGraph(ckpt, {
      layer: opts.layer,
      precision,
      dir: tmp,
      metadata: { checkpointHash: hash },
      onProgress: (done, total) => {
        throwIfAborted(opts.signal);
        if (Date.now() - beat > HEARTBEAT_MS) {
          beat = Date.now();
          const now = new Date();
          fs.utimesSync(lock, now, now); // heartbeat: we are alive, don't take over
        }
        opts.onProgress?.({ phase: 'build', done, total });
      },
    });
    const c = ckpt.config;
    const manifest: GraphManifest = {
      format: GRAPH_FORMAT,
      checkpointHash: hash,
      checkpointDir: ckpt.dir,
      architecture: c.arch.id,
      layer: opts.layer,
      precision,
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
