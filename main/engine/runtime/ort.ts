/**
 * The ONLY module that imports onnxruntime-node. Everything else passes plain typed arrays in and out.
 *
 * - Execution provider choice (auto | cuda | webgpu | cpu): `selectExecutionProvider()` is pure (unit-tested on
 *   every branch); `probeCuda()` looks at the machine (ORT's CUDA provider library, a visible NVIDIA GPU),
 *   `probeWebGpu()` asks ORT's bundled WebGPU provider (Dawn) for a GPU adapter once.
 * - ORT does not fall back silently: asking for the CUDA provider without its libraries, or WebGPU without an
 *   adapter, THROWS at session creation. `createSession()` catches that and retries on CPU, and says why in
 *   `session.epReason`.
 * - Sessions created from a model path are cached (same file, same mtime, same options → same session) and
 *   reference-counted; `close()` releases one reference.
 * - Runs are serialized per session (ORT sessions are not meant to be hammered concurrently from JS), and
 *   cancellable through an AbortSignal between runs: the check happens before a queued run starts and again when
 *   it finishes (a run in progress cannot be interrupted).
 * - The Node binding runs inference synchronously on the calling thread. With `{ worker: true }` the session
 *   lives in a worker thread (ort-worker.mjs, the only other file that loads onnxruntime-node) so the caller's
 *   event loop stays free during long runs (Electron main process IPC, `sparserm serve`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

import { CancelledError } from '../errors';
import { GraphBuilder } from '../onnx/graph-builder';

type OrtModule = typeof import('onnxruntime-node');
type OrtInferenceSession = import('onnxruntime-node').InferenceSession;

let ortModule: OrtModule | undefined;
/** Loaded lazily so commands that never run a model don't pay for the native addon. */
export function ort(): OrtModule {
  if (!ortModule) {
    const require = createRequire(import.meta.url);
    ortModule = require('onnxruntime-node') as OrtModule;
    // ORT logs a native error line when a provider library is missing; we report that ourselves.
    ortModule.env.logLevel = 'error';
  }
  return ortModule;
}

export const EP_REQUESTS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export type EpRequest = (typeof EP_REQUESTS)[number];
export type Ep = 'cuda' | 'webgpu' | 'cpu';

/** What the machine offers. The CUDA fields come from `probeCuda()` (cheap, file checks); the WebGPU ones from
 *  `probeWebGpu()` (asks Dawn for an adapter) — absent when not probed, which counts as unavailable. */
export interface CudaProbe {
  /** True when ORT's CUDA provider library is installed AND an NVIDIA GPU is visible. */
  cudaAvailable: boolean;
  /** Why CUDA is not available, in words the user can act on. */
  cudaError?: string;
  /** ORT's CUDA provider library, if found. */
  providerLibrary?: string;
  /** What tells us a GPU is there (nvidia driver in /proc, /dev/nvidia0, ...). */
  gpu?: string;
  /** True when ORT's bundled WebGPU provider got a GPU adapter from Dawn (a session on it was created). */
  webgpuAvailable?: boolean;
  /** Why WebGPU is not available ("no GPU adapter: …"). */
  webgpuError?: string;
}
export type GpuProbe = CudaProbe;

export interface EpChoice {
  ep: Ep;
  reason: string;
}

/** Graph precision a provider runs by default: f16 on GPUs (half the memory traffic; tensor cores), f32 on CPU. */
export function defaultPrecisionFor(ep: Ep): 'f16' | 'f32' {
  return ep === 'cpu' ? 'f32' : 'f16';
}

/**
 * Pure choice of execution provider from the request and what the machine offers. 'auto' = CUDA if usable, else
 * WebGPU if a GPU adapter is usable, else CPU; every fallback says why.
 */
export function selectExecutionProvider(request: EpRequest, probe: CudaProbe): EpChoice {
  const why = probe.cudaError ?? 'the CUDA execution provider is not available';
  const whyWg = probe.webgpuError ?? (probe.webgpuAvailable === undefined ? 'WebGPU not probed' : 'no GPU adapter');
  switch (request) {
    case 'cpu':
      return { ep: 'cpu', reason: 'CPU requested' };
    case 'cuda':
      return probe.cudaAvailable
        ? { ep: 'cuda', reason: 'CUDA requested and available' }
        : { ep: 'cpu', reason: `CUDA requested but unavailable (${why}); running on CPU` };
    case 'webgpu':
      return probe.webgpuAvailable
        ? { ep: 'webgpu', reason: 'WebGPU requested and a GPU adapter is available' }
        : { ep: 'cpu', reason: `WebGPU requested but unavailable (${whyWg}); CPU fallback` };
    case 'auto':
      if (probe.cudaAvailable) return { ep: 'cuda', reason: 'auto: CUDA available' };
      if (probe.webgpuAvailable) return { ep: 'webgpu', reason: `auto: CUDA unavailable (${why}); WebGPU adapter available` };
      return {
        ep: 'cpu',
        reason: probe.webgpuAvailable === undefined ? `auto: CUDA unavailable (${why}); using CPU` : `auto: CUDA unavailable (${why}), WebGPU unavailable (${whyWg}); using CPU`,
      };
    default:
      throw new Error(`unknown execution provider request: ${String(request)}`);
  }
}

/** The folder holding ORT's native libraries (where the CUDA provider .so/.dll would be installed). */
export function ortBinaryDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const arch = process.arch;
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, arch);
    return fs.existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** What the CUDA probe looks at, injectable so every platform branch is testable. */
export interface CudaProbeEnv {
  platform: NodeJS.Platform;
  /** ORT's native library folder. */
  binaryDir?: string;
  exists: (p: string) => boolean;
  env: NodeJS.ProcessEnv;
}

/** Pure CUDA availability check: ORT's CUDA provider library installed AND an NVIDIA driver/GPU visible. */
export function detectCuda(e: CudaProbeEnv): CudaProbe {
  if (e.platform === 'darwin') return { cudaAvailable: false, cudaError: 'CUDA does not exist on macOS' };
  const libName = e.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  const lib = e.binaryDir ? path.join(e.binaryDir, libName) : undefined;
  const hasLib = !!lib && e.exists(lib);
  // Linux (incl. containers with the NVIDIA runtime): the driver's /proc entry or device nodes.
  // Windows: the driver installs nvcuda.dll in System32.
  const gpuMarkers =
    e.platform === 'win32'
      ? [path.win32.join(e.env.SystemRoot ?? 'C:\\Windows', 'System32', 'nvcuda.dll')]
      : ['/proc/driver/nvidia/version', '/dev/nvidia0', '/dev/nvidiactl'];
  const hidden = e.env.CUDA_VISIBLE_DEVICES === '' || e.env.CUDA_VISIBLE_DEVICES === '-1';
  const gpu = hidden ? undefined : gpuMarkers.find((p) => e.exists(p));
  const noGpu = hidden ? 'CUDA_VISIBLE_DEVICES hides every GPU' : `no NVIDIA GPU visible (none of ${gpuMarkers.join(', ')})`;
  let cudaError: string | undefined;
  if (!hasLib && !gpu) cudaError = `${noGpu}, and ONNX Runtime's CUDA provider is not installed`;
  else if (!gpu) cudaError = noGpu;
  else if (!hasLib) {
    cudaError = `ONNX Runtime's CUDA provider is not installed (${libName} missing in ${e.binaryDir ?? 'onnxruntime-node/bin'}); reinstall with \`npm install --onnxruntime-node-install=cuda12\``;
  }
  return { cudaAvailable: hasLib && !!gpu, cudaError, providerLibrary: hasLib ? lib : undefined, gpu };
}

let probeMemo: CudaProbe | undefined;
/** Looks (cheaply, without loading CUDA) at this machine. Memoised. */
export function probeCuda(refresh = false): CudaProbe {
  if (probeMemo && !refresh) return probeMemo;
  probeMemo = detectCuda({ platform: process.platform, binaryDir: ortBinaryDir(), exists: fs.existsSync, env: process.env });
  return probeMemo;
}

/** What the WebGPU pre-check looks at, injectable so every branch is testable. */
export interface WebGpuProbeEnv {
  platform: NodeJS.Platform;
  /** Backends this onnxruntime-node build bundles (`listSupportedBackends()` names with bundled: true). */
  bundled: string[];
  exists: (p: string) => boolean;
  /** /etc/ld.so.cache as text (latin1), when readable: the dynamic linker's view of installed libraries. */
  ldCache?: string;
  env: NodeJS.ProcessEnv;
}

const VULKAN_LOADER = 'libvulkan.so.1';
const VULKAN_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];

/**
 * Pure pre-check before asking Dawn for an adapter: the build bundles WebGPU and, on Linux, the Vulkan loader
 * exists (Dawn reaches GPUs only through Vulkan there; without the loader it prints a warning and finds nothing).
 * `undefined` = worth asking Dawn; a string = why not.
 */
export function webGpuPrecheck(e: WebGpuProbeEnv): string | undefined {
  if (!e.bundled.includes('webgpu')) return 'this onnxruntime-node build bundles no WebGPU provider';
  if (e.platform !== 'linux') return undefined;
  const dirs = [...(e.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...VULKAN_DIRS];
  if (e.ldCache?.includes(VULKAN_LOADER) || dirs.some((d) => e.exists(path.join(d, VULKAN_LOADER)))) return undefined;
  return `no GPU adapter: the Vulkan loader ${VULKAN_LOADER} is not installed (Debian/Ubuntu: apt-get install libvulkan1, plus the GPU driver's Vulkan ICD)`;
}

/** "No supported adapters" and the like, without ORT's source-file prefix. */
export function webGpuFailure(err: unknown): string {
  const msg = firstLine(err);
  const m = /Failed to get a WebGPU adapter: (.*)$/.exec(msg);
  return `no GPU adapter: ${m ? m[1] : msg}`;
}

/** The smallest model (y = Relu(x)): creating a session on it asks Dawn for an adapter. */
function tinyModel(): Uint8Array {
  const b = new GraphBuilder();
  b.input('x', 'float32', [1]);
  b.output(b.op('Relu', ['x']), 'float32', [1]);
  return b.toModel({ opset: 17 });
}

let webGpuMemo: Promise<Pick<CudaProbe, 'webgpuAvailable' | 'webgpuError'>> | undefined;
/** Whether ORT's WebGPU provider gets a GPU adapter on this machine (one tiny session, memoised). */
export function probeWebGpu(refresh = false): Promise<Pick<CudaProbe, 'webgpuAvailable' | 'webgpuError'>> {
  if (webGpuMemo && !refresh) return webGpuMemo;
  webGpuMemo = (async () => {
    let ldCache: string | undefined;
    try {
      ldCache = process.platform === 'linux' ? fs.readFileSync('/etc/ld.so.cache', 'latin1') : undefined;
    } catch {
      ldCache = undefined;
    }
    const o = ort() as OrtModule & { listSupportedBackends?: () => Array<{ name: string; bundled: boolean }> };
    const bundled = (o.listSupportedBackends?.() ?? []).filter((b) => b.bundled).map((b) => b.name);
    const pre = webGpuPrecheck({ platform: process.platform, bundled, exists: fs.existsSync, ldCache, env: process.env });
    if (pre) return { webgpuAvailable: false, webgpuError: pre };
    try {
      const s = await o.InferenceSession.create(tinyModel(), { executionProviders: ['webgpu'], logSeverityLevel: 3 });
      await s.release();
      return { webgpuAvailable: true };
    } catch (err) {
      return { webgpuAvailable: false, webgpuError: webGpuFailure(err) };
    }
  })();
  return webGpuMemo;
}

/** The probe a request needs: CUDA always (cheap); WebGPU only when it could be chosen. */
export async function probeGpus(request: EpRequest, refresh = false): Promise<CudaProbe> {
  const cuda = probeCuda(refresh);
  if (request === 'webgpu' || (request === 'auto' && !cuda.cudaAvailable)) return { ...cuda, ...(await probeWebGpu(refresh)) };
  return cuda;
}

export type TensorType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8' | 'float64';
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array;

/** A tensor going into or coming out of a session; plain data so callers never touch onnxruntime. */
export interface TensorValue {
  type: TensorType;
  data: TensorData;
  dims: number[];
}

export interface SessionOptions {
  ep?: EpRequest;
  /** Threads for one op (default: os.availableParallelism(); ORT left to itself ran one on these VMs). */
  intraOpThreads?: number;
  /** Share one session per (file, mtime, options). Default true for paths; byte models are never cached. */
  cache?: boolean;
  /**
   * Run the session in its own worker thread (ort-worker.mjs): the Node binding runs inference synchronously, so
   * in-process runs block the event loop for a whole forward pass; a worker keeps IPC/HTTP/progress responsive.
   * Feeds are copied to the worker, outputs moved back. Default false.
   */
  worker?: boolean;
  /** Injected for tests: the machine probe. */
  probe?: CudaProbe;
}

export interface OrtSession {
  readonly ep: Ep;
  readonly epReason: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs one forward pass (queued behind runs already in flight on this session). */
  run(feeds: Record<string, TensorValue>, opts?: { signal?: AbortSignal; outputs?: string[] }): Promise<Record<string, TensorValue>>;
  /** Releases this reference; the native session is freed when the last one closes. */
  close(): Promise<void>;
}

/** A native session, in this thread or in a worker. */
interface Backend {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, TensorValue>, outputs?: string[]): Promise<Record<string, TensorValue>>;
  release(): Promise<void>;
}

interface Shared {
  key?: string;
  session: Backend;
  ep: Ep;
  epReason: string;
  refs: number;
  queue: Promise<unknown>;
}

const cache = new Map<string, Promise<Shared>>();

/** ORT's options for one provider. Kept in one place so the CUDA settings are easy to audit. */
function providerConfig(ep: Ep): Array<string | { name: string; [k: string]: unknown }> {
  if (ep === 'cuda') return [{ name: 'cuda' }, 'cpu'];
  // Ops WebGPU lacks run on CPU inside the same session.
  if (ep === 'webgpu') return [{ name: 'webgpu' }, 'cpu'];
  return ['cpu'];
}

type OrtCreateOptions = import('onnxruntime-node').InferenceSession.SessionOptions;

function toOrtTensor(name: string, v: TensorValue): import('onnxruntime-node').Tensor {
  const count = v.dims.reduce((a, d) => a * d, 1);
  if (count !== v.data.length) throw new Error(`feed ${name}: ${v.data.length} values for dims [${v.dims.join(',')}]`);
  return new (ort().Tensor)(v.type as never, v.data as never, v.dims);
}

async function inProcessBackend(model: string | Uint8Array, options: OrtCreateOptions): Promise<Backend> {
  const o = ort();
  const session: OrtInferenceSession =
    typeof model === 'string' ? await o.InferenceSession.create(model, options) : await o.InferenceSession.create(model, options);
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputs) {
      const ortFeeds: Record<string, import('onnxruntime-node').Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrtTensor(k, v);
      const res = outputs ? await session.run(ortFeeds, outputs) : await session.run(ortFeeds);
      const out: Record<string, TensorValue> = {};
      for (const [k, t] of Object.entries(res)) out[k] = { type: t.type as TensorType, data: t.data as TensorData, dims: [...t.dims] };
      return out;
    },
    release: () => session.release(),
  };
}

async function workerBackend(model: string | Uint8Array, options: OrtCreateOptions): Promise<Backend> {
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(new URL('./ort-worker.mjs', import.meta.url));
  worker.unref(); // an idle session must not keep the process alive
  let exitError: Error | undefined;
  const pending: Array<{ resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];
  worker.on('message', (m: Record<string, unknown>) => {
    const p = pending.shift();
    if (!p) return;
    if (m.ok) p.resolve(m);
    else p.reject(new Error(String(m.error)));
  });
  const fail = (err: Error) => {
    exitError = err;
    for (const p of pending.splice(0)) p.reject(err);
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`ONNX Runtime worker exited (code ${code})`)));
  // One request at a time per worker; the session queue above already serializes runs.
  const call = (msg: Record<string, unknown>): Promise<Record<string, unknown>> => {
    if (exitError) return Promise.reject(exitError);
    return new Promise((resolve, reject) => {
      pending.push({ resolve, reject });
      worker.ref(); // keep the process alive while work is in flight
      worker.postMessage(msg);
    }).finally(() => {
      if (pending.length === 0) worker.unref();
    }) as Promise<Record<string, unknown>>;
  };
  let created: Record<string, unknown>;
  try {
    created = await call({ op: 'create', model, options });
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    inputNames: created.inputNames as string[],
    outputNames: created.outputNames as string[],
    async run(feeds, outputs) {
      for (const [k, v] of Object.entries(feeds)) {
        const count = v.dims.reduce((a, d) => a * d, 1);
        if (count !== v.data.length) throw new Error(`feed ${k}: ${v.data.length} values for dims [${v.dims.join(',')}]`);
      }
      const r = await call({ op: 'run', feeds, outputs });
      return r.outputs as Record<string, TensorValue>;
    },
    async release() {
      try {
        await call({ op: 'release' });
      } catch {
        /* already gone */
      }
      await worker.terminate();
    },
  };
}

async function createShared(model: string | Uint8Array, opts: SessionOptions, key?: string): Promise<Shared> {
  const request = opts.ep ?? 'auto';
  const choice = selectExecutionProvider(request, opts.probe ?? (await probeGpus(request)));
  const base: OrtCreateOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // Unset, ORT 1.30 ran one thread on these 2-core VMs (its core detection): use the cores the OS gives us.
    intraOpNumThreads: opts.intraOpThreads || os.availableParallelism(),
  };
  const make = (ep: Ep) => {
    const options = { ...base, executionProviders: providerConfig(ep) as never };
    return opts.worker ? workerBackend(model, options) : inProcessBackend(model, options);
  };
  let session: Backend;
  let { ep, reason } = choice;
  if (ep !== 'cpu') {
    try {
      session = await make(ep);
    } catch (err) {
      // ORT throws instead of falling back when CUDA/cuDNN libraries are missing, no WebGPU adapter is found, or
      // the GPU can't be used for this graph.
      const what = ep === 'cuda' ? 'CUDA' : 'WebGPU';
      ep = 'cpu';
      reason = `${reason}, but creating the ${what} session failed (${firstLine(err)}); running on CPU`;
      session = await make('cpu');
    }
  } else {
    session = await make('cpu');
  }
  return { key, session, ep, epReason: reason, refs: 0, queue: Promise.resolve() };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}

/**
 * Creates (or reuses) a session. A model given by path may use external data beside it; a model given as
 * bytes must be self-contained.
 */
export async function createSession(model: string | Uint8Array, opts: SessionOptions = {}): Promise<OrtSession> {
  let shared: Shared;
  if (typeof model === 'string' && opts.cache !== false) {
    const abs = path.resolve(model);
    const st = fs.statSync(abs);
    const key = JSON.stringify([abs, st.size, st.mtimeMs, opts.ep ?? 'auto', opts.intraOpThreads ?? 0, !!opts.worker]);
    let p = cache.get(key);
    if (!p) {
      p = createShared(abs, opts, key);
      cache.set(key, p);
      p.catch(() => cache.delete(key));
    }
    shared = await p;
  } else {
    shared = await createShared(model, opts);
  }
  shared.refs++;
  return wrap(shared);
}

function wrap(shared: Shared): OrtSession {
  let closed = false;
  return {
    ep: shared.ep,
    epReason: shared.epReason,
    inputNames: shared.session.inputNames,
    outputNames: shared.session.outputNames,
    run(feeds, opts = {}) {
      if (closed) return Promise.reject(new Error('session is closed'));
      const task = async () => {
        if (opts.signal?.aborted) throw new CancelledError();
        const out = await shared.session.run(feeds, opts.outputs);
        if (opts.signal?.aborted) throw new CancelledError();
        return out;
      };
      const next = shared.queue.then(task, task);
      shared.queue = next.catch(() => undefined);
      return next;
    },
    async close() {
      if (closed) return;
      closed = true;
      shared.refs--;
      if (shared.refs > 0) return;
      if (shared.key) cache.delete(shared.key);
      await shared.queue;
      await shared.session.release();
    },
  };
}

/** Number of distinct native sessions alive in the cache (for tests and `doctor`). */
export function cachedSessionCount(): number {
  return cache.size;
}

/** What `doctor` prints: ORT version and backends this build knows about. */
export function ortInfo(): { version: string; backends: Array<{ name: string; bundled: boolean }>; binaryDir?: string } {
  const o = ort() as OrtModule & { listSupportedBackends?: () => Array<{ name: string; bundled: boolean }> };
  return {
    version: o.env.versions?.node ?? o.env.versions?.common ?? 'unknown',
    backends: o.listSupportedBackends?.() ?? [],
    binaryDir: ortBinaryDir(),
  };
}
