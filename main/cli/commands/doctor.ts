import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';

import { backboneMemoryNeed, GEMMA2_9B_L31, LLAMA31_8B_L15, llama8bMemoryLine, precisionMemoryLine, systemMemory } from '../../engine/backbone/memory';
import { GraphBuilder } from '../../engine/onnx/graph-builder';
import { cacheDirs, cacheHome, dataHome, databasePath } from '../../engine/paths';
import { createSession, ortInfo, probeGpus, selectExecutionProvider } from '../../engine/runtime/ort';
import { action, printJson } from '../output';

function sizeOf(p: string): { path: string; exists: boolean; sizeBytes: number; entries: number } {
  if (!fs.existsSync(p)) return { path: p, exists: false, sizeBytes: 0, entries: 0 };
  const walk = (d: string): number =>
    fs.readdirSync(d, { withFileTypes: true }).reduce((a, e) => {
      const q = path.join(d, e.name);
      return a + (e.isDirectory() ? walk(q) : e.isFile() ? fs.statSync(q).size : 0);
    }, 0);
  const st = fs.statSync(p);
  return { path: p, exists: true, sizeBytes: st.isDirectory() ? walk(p) : st.size, entries: st.isDirectory() ? fs.readdirSync(p).length : 1 };
}

/** Built backbone graphs in the cache, from their manifests (what they are, for which checkpoint). */
function graphEntries(dir: string): Array<{ name: string; architecture?: string; layer?: number; precision?: string; checkpointDir?: string; createdAt?: string; sizeBytes: number }> {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .map((name) => {
      const p = path.join(dir, name);
      let m: Record<string, unknown> = {};
      try {
        m = JSON.parse(fs.readFileSync(path.join(p, 'manifest.json'), 'utf8'));
      } catch {
        /* incomplete folder: listed with its size only */
      }
      return {
        name,
        architecture: m.architecture as string | undefined,
        layer: m.layer as number | undefined,
        precision: m.precision as string | undefined,
        checkpointDir: m.checkpointDir as string | undefined,
        createdAt: m.createdAt as string | undefined,
        sizeBytes: sizeOf(p).sizeBytes,
      };
    });
}

/** nvidia-smi's GPU list, or why there is none. */
function nvidiaSmi(): { found: boolean; gpus?: string[]; error?: string } {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return { found: false, error: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'nvidia-smi not found' : r.error.message };
  if (r.status !== 0) return { found: true, error: (r.stderr || r.stdout).trim().split('\n')[0] };
  return { found: true, gpus: r.stdout.trim().split('\n').filter(Boolean) };
}

/** CUDA runtime libraries the dynamic loader knows about (Linux), which ORT's CUDA provider needs. */
function cudaLibraries(): Record<string, string | null> {
  const wanted = ['libcudart.so', 'libcublas.so', 'libcublasLt.so', 'libcudnn.so', 'libcufft.so'];
  const out: Record<string, string | null> = Object.fromEntries(wanted.map((w) => [w, null]));
  if (process.platform !== 'linux') return out;
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000 });
  const lines = r.status === 0 ? r.stdout.split('\n') : [];
  const extra = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  for (const w of wanted) {
    const hit = lines.find((l) => l.trim().startsWith(w));
    if (hit) out[w] = hit.split('=>').pop()!.trim();
    else {
      for (const d of extra) {
        const f = fs.existsSync(d) ? fs.readdirSync(d).find((n) => n.startsWith(w)) : undefined;
        if (f) {
          out[w] = path.join(d, f);
          break;
        }
      }
    }
  }
  return out;
}

/** Opens a one-node model with ep=auto: what a real session gets, including ORT's own CUDA failure. */
async function liveSessionCheck(): Promise<{ ep: string; reason: string; ok: boolean; error?: string }> {
  try {
    const b = new GraphBuilder({ name: 'doctor' });
    const x = b.input('x', 'float32', [1]);
    b.node('Relu', [x], ['y']);
    b.output('y', 'float32', [1]);
    const s = await createSession(b.toModel({ opset: 21 }), { ep: 'auto', cache: false });
    const out = await s.run({ x: { type: 'float32', data: new Float32Array([-1]), dims: [1] } });
    await s.close();
    return { ep: s.ep, reason: s.epReason, ok: (out.y.data as Float32Array)[0] === 0 };
  } catch (err) {
    return { ep: 'none', reason: 'session creation failed', ok: false, error: (err as Error).message };
  }
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('ONNX Runtime version, execution providers (available, chosen and why), GPU visibility, cache locations and sizes')
    .option('--json', 'print one JSON document on stdout')
    .action(
      action(async (opts: { json?: boolean }) => {
        const info = ortInfo();
        const probe = await probeGpus('auto', true);
        const report = {
          node: process.version,
          platform: `${process.platform}-${process.arch}`,
          onnxruntime: { version: info.version, backends: info.backends, binaryDir: info.binaryDir ?? null },
          executionProvider: {
            available: ['cpu', ...(probe.cudaAvailable ? ['cuda'] : []), ...(probe.webgpuAvailable ? ['webgpu'] : [])],
            auto: selectExecutionProvider('auto', probe),
            live: await liveSessionCheck(),
            cuda: { available: probe.cudaAvailable, providerLibrary: probe.providerLibrary ?? null, reason: probe.cudaError ?? null },
            webgpu: { available: probe.webgpuAvailable ?? null, reason: probe.webgpuError ?? null },
          },
          gpu: {
            nvidiaSmi: nvidiaSmi(),
            procDriverNvidia: fs.existsSync('/proc/driver/nvidia'),
            devNvidia0: fs.existsSync('/dev/nvidia0'),
            cudaLibraries: cudaLibraries(),
          },
          // What the paper's third backbone needs (issue 11): blocks 0..15 of Llama-3.1-8B, per precision.
          memory: {
            ...systemMemory(),
            llama31_8b_layer15: {
              f32Bytes: backboneMemoryNeed(LLAMA31_8B_L15.shape, LLAMA31_8B_L15.layer, 'f32').needBytes,
              f16Bytes: backboneMemoryNeed(LLAMA31_8B_L15.shape, LLAMA31_8B_L15.layer, 'f16').needBytes,
              ...llama8bMemoryLine(),
            },
            // Issue 13: the paper's headline backbone, per precision (f32 / f16 / int8 / int4).
            gemma2_9b_layer31: precisionMemoryLine(GEMMA2_9B_L31.shape, GEMMA2_9B_L31.layer),
          },
          locations: {
            dataHome: dataHome(),
            database: databasePath(),
            cacheHome: cacheHome(),
          },
          caches: {
            graphs: { ...sizeOf(cacheDirs.graphs()), items: graphEntries(cacheDirs.graphs()) },
            features: sizeOf(cacheDirs.features()),
            checkpointDigests: sizeOf(path.join(cacheHome(), 'checkpoint-digests')),
          },
        };
        if (opts.json) {
          printJson(report);
          return;
        }
        const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
        const lines = [
          `node ${report.node} (${report.platform})`,
          `onnxruntime-node ${report.onnxruntime.version}; backends: ${report.onnxruntime.backends.map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`).join(', ')}`,
          `execution providers available: ${report.executionProvider.available.join(', ')}`,
          `auto chooses: ${report.executionProvider.auto.ep} — ${report.executionProvider.auto.reason}`,
          `live session: ${report.executionProvider.live.ep} — ${report.executionProvider.live.reason}${report.executionProvider.live.ok ? ' (ran OK)' : ` (FAILED: ${report.executionProvider.live.error ?? 'wrong result'})`}`,
          `GPU: nvidia-smi ${report.gpu.nvidiaSmi.gpus?.join('; ') ?? report.gpu.nvidiaSmi.error}; /proc/driver/nvidia ${report.gpu.procDriverNvidia ? 'present' : 'absent'}; /dev/nvidia0 ${report.gpu.devNvidia0 ? 'present' : 'absent'}`,
          `CUDA libraries: ${Object.entries(report.gpu.cudaLibraries).map(([k, v]) => `${k} ${v ? 'found' : 'missing'}`).join(', ')}`,
          `memory for ${LLAMA31_8B_L15.label}: ${report.memory.llama31_8b_layer15.detail}`,
          `memory for ${GEMMA2_9B_L31.label}: ${report.memory.gemma2_9b_layer31.detail}`,
          `database: ${report.locations.database}`,
          ...Object.entries(report.caches).map(([k, v]) => `cache ${k}: ${v.path} (${v.exists ? `${mb(v.sizeBytes)}, ${v.entries} entries` : 'empty'})`),
          ...report.caches.graphs.items.map(
            (g) => `  graph ${g.name}: ${g.architecture ?? '?'} L=${g.layer ?? '?'} ${g.precision ?? '?'} ${mb(g.sizeBytes)} from ${g.checkpointDir ?? '(incomplete)'}`,
          ),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
