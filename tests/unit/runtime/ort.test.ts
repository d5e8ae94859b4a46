import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { CancelledError } from '../../../main/engine/errors';
import { GraphBuilder, saveModel } from '../../../main/engine/onnx/graph-builder';
import {
  cachedSessionCount,
  createSession,
  ortInfo,
  detectCuda,
  probeCuda,
  selectExecutionProvider,
  type CudaProbe,
} from '../../../main/engine/runtime/ort';
import { tempDir } from '../../helpers/paths';

const noCuda: CudaProbe = { cudaAvailable: false, cudaError: 'no NVIDIA GPU visible' };
const cuda: CudaProbe = { cudaAvailable: true, gpu: '/dev/nvidia0', providerLibrary: '/x/libonnxruntime_providers_cuda.so' };

describe('selectExecutionProvider', () => {
  it('cpu request → cpu, whatever the machine has', () => {
    expect(selectExecutionProvider('cpu', cuda)).toEqual({ ep: 'cpu', reason: 'CPU requested' });
    expect(selectExecutionProvider('cpu', noCuda).ep).toBe('cpu');
  });
  it('cuda request → cuda when available, else cpu with the probe reason', () => {
    expect(selectExecutionProvider('cuda', cuda).ep).toBe('cuda');
    const r = selectExecutionProvider('cuda', noCuda);
    expect(r.ep).toBe('cpu');
    expect(r.reason).toContain('CUDA requested but unavailable');
    expect(r.reason).toContain('no NVIDIA GPU visible');
    expect(r.reason).toContain('running on CPU');
  });
  it('auto → cuda when available, else cpu with the reason (a generic one when the probe gives none)', () => {
    expect(selectExecutionProvider('auto', cuda)).toEqual({ ep: 'cuda', reason: 'auto: CUDA available' });
    expect(selectExecutionProvider('auto', noCuda).reason).toBe('auto: CUDA unavailable (no NVIDIA GPU visible); using CPU');
    expect(selectExecutionProvider('auto', { cudaAvailable: false }).reason).toContain('the CUDA execution provider is not available');
  });
  it('unknown request throws', () => {
    expect(() => selectExecutionProvider('tpu' as never, cuda)).toThrow(/unknown/);
  });
});

describe('detectCuda (every platform branch)', () => {
  const linuxLib = '/ort/bin/libonnxruntime_providers_cuda.so';
  const env = (files: string[], extra: NodeJS.ProcessEnv = {}) => ({
    binaryDir: '/ort/bin',
    exists: (p: string) => files.includes(p),
    env: extra,
  });
  it('linux: needs both the provider library and a visible GPU', () => {
    expect(detectCuda({ platform: 'linux', ...env([linuxLib, '/dev/nvidia0']) })).toMatchObject({ cudaAvailable: true, gpu: '/dev/nvidia0', providerLibrary: linuxLib });
    const noLib = detectCuda({ platform: 'linux', ...env(['/proc/driver/nvidia/version']) });
    expect(noLib.cudaAvailable).toBe(false);
    expect(noLib.cudaError).toMatch(/CUDA provider is not installed.*--onnxruntime-node-install=cuda12/);
    const noGpu = detectCuda({ platform: 'linux', ...env([linuxLib]) });
    expect(noGpu.cudaError).toMatch(/^no NVIDIA GPU visible/);
    expect(detectCuda({ platform: 'linux', ...env([]) }).cudaError).toMatch(/no NVIDIA GPU visible.*and ONNX Runtime's CUDA provider is not installed/);
  });
  it('CUDA_VISIBLE_DEVICES="" or -1 hides the GPU', () => {
    const r = detectCuda({ platform: 'linux', ...env([linuxLib, '/dev/nvidia0'], { CUDA_VISIBLE_DEVICES: '-1' }) });
    expect(r.cudaAvailable).toBe(false);
    expect(r.cudaError).toMatch(/CUDA_VISIBLE_DEVICES hides every GPU/);
  });
  it('windows: the driver\'s nvcuda.dll and the provider DLL', () => {
    const dll = '/ort/bin/onnxruntime_providers_cuda.dll';
    const r = detectCuda({ platform: 'win32', ...env([dll, 'D:\\Win\\System32\\nvcuda.dll'], { SystemRoot: 'D:\\Win' }) });
    expect(r).toMatchObject({ cudaAvailable: true, providerLibrary: dll });
  });
  it('macOS: never', () => {
    expect(detectCuda({ platform: 'darwin', ...env([]) })).toEqual({ cudaAvailable: false, cudaError: 'CUDA does not exist on macOS' });
  });
});

describe('probeCuda on this machine', () => {
  it('reports what is missing in actionable words', () => {
    const p = probeCuda(true);
    if (!p.cudaAvailable) expect(p.cudaError).toMatch(/GPU|CUDA provider/);
    else expect(p.providerLibrary).toBeTruthy();
  });
});

function addOneModel(): string {
  const dir = tempDir();
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['n']);
  b.node('Add', [x, b.constF32([1])], ['y']);
  b.output('y', 'float32', ['n']);
  const file = path.join(dir, 'add.onnx');
  saveModel(file, b.toModel({ opset: 21 }));
  return file;
}

describe('createSession', () => {
  it('falls back to CPU with a clear reason when the CUDA provider throws at session creation', async () => {
    // Pretend the probe saw a GPU: ORT then really tries CUDA, throws (no provider library here), and we retry.
    const file = addOneModel();
    const s = await createSession(file, { ep: 'cuda', probe: cuda, cache: false });
    expect(s.ep).toBe('cpu');
    expect(s.epReason).toMatch(/creating the CUDA session failed \(.+\); running on CPU/);
    const out = await s.run({ x: { type: 'float32', data: new Float32Array([1, 2]), dims: [2] } });
    expect(Array.from(out.y.data as Float32Array)).toEqual([2, 3]);
    await s.close();
  });

  it('caches sessions by file, counts references, and frees on the last close', async () => {
    const file = addOneModel();
    const before = cachedSessionCount();
    const a = await createSession(file, { ep: 'cpu' });
    const b = await createSession(file, { ep: 'cpu' });
    expect(cachedSessionCount()).toBe(before + 1);
    await a.close();
    expect(cachedSessionCount()).toBe(before + 1);
    const out = await b.run({ x: { type: 'float32', data: new Float32Array([5]), dims: [1] } });
    expect((out.y.data as Float32Array)[0]).toBe(6);
    await b.close();
    expect(cachedSessionCount()).toBe(before);
    await expect(b.run({ x: { type: 'float32', data: new Float32Array([5]), dims: [1] } })).rejects.toThrow(/closed/);
  });

  it('serializes runs in submission order and cancels queued runs via AbortSignal', async () => {
    const s = await createSession(addOneModel(), { ep: 'cpu', cache: false });
    const order: number[] = [];
    const ctl = new AbortController();
    const runs = [0, 1, 2, 3].map((i) =>
      s
        .run({ x: { type: 'float32', data: new Float32Array([i]), dims: [1] } }, { signal: i >= 2 ? ctl.signal : undefined })
        .then((o) => {
          order.push(i);
          if (i === 1) ctl.abort();
          return (o.y.data as Float32Array)[0];
        }),
    );
    const settled = await Promise.allSettled(runs);
    expect(order).toEqual([0, 1]);
    expect(settled[0]).toEqual({ status: 'fulfilled', value: 1 });
    expect(settled[1]).toEqual({ status: 'fulfilled', value: 2 });
    for (const r of settled.slice(2)) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(CancelledError);
    }
    // The session still works after cancellations.
    const after = await s.run({ x: { type: 'float32', data: new Float32Array([9]), dims: [1] } });
    expect((after.y.data as Float32Array)[0]).toBe(10);
    await s.close();
  });

  it('rejects feeds whose data does not match their dims', async () => {
    const s = await createSession(addOneModel(), { ep: 'cpu', cache: false });
    await expect(s.run({ x: { type: 'float32', data: new Float32Array(3), dims: [2] } })).rejects.toThrow(/3 values for dims \[2\]/);
    await s.close();
  });

  it('ortInfo reports the installed version', () => {
    const info = ortInfo();
    expect(info.version).toMatch(/^1\.30\./);
    expect(info.backends.map((b) => b.name)).toContain('cpu');
  });
});

/** x [1, n, d] through `depth` chained d×d MatMuls: slow enough to observe the event loop during a run. */
function heavyModel(d: number, depth: number): string {
  const dir = tempDir();
  const b = new GraphBuilder({ externalData: { dir } });
  let x = b.input('x', 'float32', [1, 'n', d]);
  const w = new Float32Array(d * d);
  for (let i = 0; i < d; i++) w[i * d + i] = 1; // identity: the output must equal the input
  for (let k = 0; k < depth; k++) x = b.op('MatMul', [x, b.initializer(`w${k}`, w, [d, d])]);
  b.node('Identity', [x], ['y']);
  b.output('y', 'float32', [1, 'n', d]);
  const file = path.join(dir, 'heavy.onnx');
  saveModel(file, b.toModel({ opset: 21 }));
  return file;
}

async function maxLoopGap(work: () => Promise<unknown>): Promise<{ gap: number; total: number }> {
  let last = performance.now();
  let gap = 0;
  const t = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 5);
  const t0 = performance.now();
  await work();
  const total = performance.now() - t0;
  clearInterval(t);
  gap = Math.max(gap, performance.now() - last);
  return { gap, total };
}

describe('createSession({ worker: true })', () => {
  it('gives the same results as in-process and keeps the event loop free during a long run', async () => {
    const file = heavyModel(512, 24);
    const n = 512;
    const x = new Float32Array(n * 512).map((_, i) => (i % 97) / 97);
    const feeds = { x: { type: 'float32' as const, data: x, dims: [1, n, 512] } };
    const inproc = await createSession(file, { ep: 'cpu', cache: false, intraOpThreads: 1 });
    const worker = await createSession(file, { ep: 'cpu', cache: false, intraOpThreads: 1, worker: true });
    expect(worker.inputNames).toEqual(['x']);
    const a = await inproc.run(feeds);
    const b = await worker.run(feeds);
    expect(Array.from(b.y.data as Float32Array)).toEqual(Array.from(a.y.data as Float32Array));
    expect((b.y.data as Float32Array)[5]).toBeCloseTo(x[5], 5);
    const blocked = await maxLoopGap(() => inproc.run(feeds));
    const free = await maxLoopGap(() => worker.run(feeds));
    // In-process, the whole run is one event-loop stall; in the worker, timers keep firing.
    expect(blocked.gap).toBeGreaterThan(0.8 * blocked.total);
    expect(free.gap).toBeLessThan(0.5 * free.total);
    await inproc.close();
    await worker.close();
    await expect(worker.run(feeds)).rejects.toThrow(/closed/);
  });

  it('falls back to CPU inside the worker too, serializes, cancels, and reports feed errors', async () => {
    const s = await createSession(addOneModel(), { ep: 'cuda', probe: cuda, cache: false, worker: true });
    expect(s.ep).toBe('cpu');
    expect(s.epReason).toMatch(/creating the CUDA session failed/);
    const ctl = new AbortController();
    const runs = [1, 2, 3].map((v, i) => s.run({ x: { type: 'float32', data: new Float32Array([v]), dims: [1] } }, { signal: i === 2 ? ctl.signal : undefined }));
    ctl.abort();
    const settled = await Promise.allSettled(runs);
    expect(settled.slice(0, 2).map((r) => (r.status === 'fulfilled' ? (r.value.y.data as Float32Array)[0] : NaN))).toEqual([2, 3]);
    expect(settled[2].status).toBe('rejected');
    await expect(s.run({ x: { type: 'float32', data: new Float32Array(2), dims: [1] } })).rejects.toThrow(/2 values for dims \[1\]/);
    await s.close();
  });
});
