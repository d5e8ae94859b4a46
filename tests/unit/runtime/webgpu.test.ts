/**
 * WebGPU as a GPU option (issue 13 item 5): the pure provider choice auto | cuda | webgpu | cpu, the WebGPU
 * pre-check (bundled provider, Vulkan loader on Linux), and on this machine a real session asked for WebGPU that
 * falls back to CPU and says why.
 */
import { describe, expect, it } from 'vitest';

import { GraphBuilder } from '../../../main/engine/onnx/graph-builder';
import {
  EP_REQUESTS,
  createSession,
  defaultPrecisionFor,
  probeGpus,
  probeWebGpu,
  selectExecutionProvider,
  webGpuFailure,
  webGpuPrecheck,
  type CudaProbe,
} from '../../../main/engine/runtime/ort';

const noGpu: CudaProbe = { cudaAvailable: false, cudaError: 'no NVIDIA GPU visible', webgpuAvailable: false, webgpuError: 'no GPU adapter: No supported adapters' };
const webgpuOnly: CudaProbe = { cudaAvailable: false, cudaError: 'no NVIDIA GPU visible', webgpuAvailable: true };
const both: CudaProbe = { cudaAvailable: true, gpu: '/dev/nvidia0', webgpuAvailable: true };

describe('selectExecutionProvider with WebGPU', () => {
  it('lists the four requests', () => {
    expect([...EP_REQUESTS]).toEqual(['auto', 'cuda', 'webgpu', 'cpu']);
  });
  it('webgpu request → webgpu when an adapter is usable, else cpu with the probe reason', () => {
    expect(selectExecutionProvider('webgpu', webgpuOnly)).toEqual({ ep: 'webgpu', reason: 'WebGPU requested and a GPU adapter is available' });
    expect(selectExecutionProvider('webgpu', both).ep).toBe('webgpu'); // asked for WebGPU: CUDA being there does not override it
    const r = selectExecutionProvider('webgpu', noGpu);
    expect(r).toEqual({ ep: 'cpu', reason: 'WebGPU requested but unavailable (no GPU adapter: No supported adapters); CPU fallback' });
    // never probed counts as unavailable, and says so
    expect(selectExecutionProvider('webgpu', { cudaAvailable: false }).reason).toContain('WebGPU not probed');
  });
  it('auto → cuda first, then webgpu, then cpu; each with its reason', () => {
    expect(selectExecutionProvider('auto', both)).toEqual({ ep: 'cuda', reason: 'auto: CUDA available' });
    expect(selectExecutionProvider('auto', webgpuOnly)).toEqual({ ep: 'webgpu', reason: 'auto: CUDA unavailable (no NVIDIA GPU visible); WebGPU adapter available' });
    expect(selectExecutionProvider('auto', noGpu)).toEqual({
      ep: 'cpu',
      reason: 'auto: CUDA unavailable (no NVIDIA GPU visible), WebGPU unavailable (no GPU adapter: No supported adapters); using CPU',
    });
  });
  it('cuda and cpu requests ignore WebGPU', () => {
    expect(selectExecutionProvider('cuda', webgpuOnly).ep).toBe('cpu');
    expect(selectExecutionProvider('cpu', both)).toEqual({ ep: 'cpu', reason: 'CPU requested' });
  });
  it('GPU providers default to f16 graphs, CPU to f32', () => {
    expect(defaultPrecisionFor('webgpu')).toBe('f16');
    expect(defaultPrecisionFor('cuda')).toBe('f16');
    expect(defaultPrecisionFor('cpu')).toBe('f32');
  });
});

describe('webGpuPrecheck', () => {
  const base = { platform: 'linux' as NodeJS.Platform, bundled: ['cpu', 'webgpu'], exists: () => false, env: {} };
  it('refuses a build without the WebGPU provider', () => {
    expect(webGpuPrecheck({ ...base, bundled: ['cpu'] })).toMatch(/bundles no WebGPU provider/);
  });
  it('Linux without the Vulkan loader: no GPU adapter, and what to install', () => {
    const why = webGpuPrecheck(base)!;
    expect(why).toMatch(/^no GPU adapter: the Vulkan loader libvulkan\.so\.1 is not installed/);
    expect(why).toContain('apt-get install libvulkan1');
  });
  it('Linux with the loader in ld.so.cache, a standard folder or LD_LIBRARY_PATH: worth asking Dawn', () => {
    expect(webGpuPrecheck({ ...base, ldCache: '\u0000libvulkan.so.1\u0000/usr/lib/x86_64-linux-gnu/libvulkan.so.1' })).toBeUndefined();
    expect(webGpuPrecheck({ ...base, exists: (p) => p === '/usr/lib/x86_64-linux-gnu/libvulkan.so.1' })).toBeUndefined();
    expect(webGpuPrecheck({ ...base, env: { LD_LIBRARY_PATH: '/opt/vk/lib:' }, exists: (p) => p === '/opt/vk/lib/libvulkan.so.1' })).toBeUndefined();
  });
  it('macOS and Windows go straight to Dawn (Metal / D3D12 need no loader)', () => {
    expect(webGpuPrecheck({ ...base, platform: 'darwin' })).toBeUndefined();
    expect(webGpuPrecheck({ ...base, platform: 'win32' })).toBeUndefined();
  });
  it("ORT's adapter failure reads as 'no GPU adapter: …' without the source-file prefix", () => {
    const ortMsg =
      '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(...) adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters';
    expect(webGpuFailure(new Error(ortMsg))).toBe('no GPU adapter: No supported adapters');
    expect(webGpuFailure(new Error('something else\nline two'))).toBe('no GPU adapter: something else');
  });
});

function reluModel(): Uint8Array {
  const b = new GraphBuilder();
  b.input('x', 'float32', [3]);
  b.output(b.op('Relu', ['x']), 'float32', [3]);
  return b.toModel({ opset: 17 });
}

describe('WebGPU on this machine', () => {
  it('a session asked for WebGPU runs (on CPU with the reason when there is no GPU adapter) and computes the same', async () => {
    const wg = await probeWebGpu();
    const s = await createSession(reluModel(), { ep: 'webgpu' });
    try {
      if (wg.webgpuAvailable) {
        expect(s.ep).toBe('webgpu');
      } else {
        expect(s.ep).toBe('cpu');
        expect(s.epReason).toMatch(/^WebGPU requested but unavailable \(no GPU adapter: .+\); CPU fallback$/);
      }
      const out = await s.run({ x: { type: 'float32', data: Float32Array.from([-1, 0.5, 2]), dims: [3] } });
      expect([...(out[s.outputNames[0]].data as Float32Array)]).toEqual([0, 0.5, 2]);
    } finally {
      await s.close();
    }
  });
  it("auto names both GPU routes it tried when it lands on CPU", async () => {
    const probe = await probeGpus('auto');
    const c = selectExecutionProvider('auto', probe);
    if (c.ep === 'cpu') {
      expect(probe.webgpuAvailable).toBe(false);
      expect(c.reason).toMatch(/^auto: CUDA unavailable \(.+\), WebGPU unavailable \(no GPU adapter: .+\); using CPU$/);
    } else {
      expect(['cuda', 'webgpu']).toContain(c.ep);
    }
  });
});
