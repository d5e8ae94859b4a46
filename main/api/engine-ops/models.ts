/** The Models screen and the environment: doctor, registered models, registration, compatibility, the build job. */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { loadCheckpoint, ensureBackboneGraph, readModelConfig, llama8bMemoryLine, LLAMA31_8B_L15, GEMMA2_9B_L31, precisionMemoryLine, PRECISIONS } from '../../engine/backbone';
import { loadSae, checkSaeForBackbone } from '../../engine/sae';
import { probeGpus, selectExecutionProvider } from '../../engine/runtime';
import { readKit, DEMO_LABEL } from '../../engine/demo/kit';
import { projectRoot } from '../../engine/paths';
import { registerCheckpoint, registerSae } from '../../engine/sparserm/registry';
import type { EngineContext, EngineOps } from '../engine-ops';
import { backboneInfo, rewardModelInfo, saeInfo } from './model-info';
import type { RewardModelViews } from './reward-model-views';
import { dedupeByPath, modelRows } from './shared';

const BuildParams = z.object({ checkpointId: z.string(), layer: z.number().int().nonnegative(), precision: z.enum(PRECISIONS).optional() });

export function createModelOps(ctx: EngineContext, views: RewardModelViews): Pick<EngineOps, 'doctor' | 'listModels' | 'addCheckpoint' | 'addSae' | 'checkCompatibility' | 'startBuild'> {
  const { store, runner } = ctx;
  const { requireBackbone, requireSae } = modelRows(store);
  const { trainView, trainedWith } = views;
  runner.define(
    'build',
    async (params: z.infer<typeof BuildParams>, job) => {
      const b = requireBackbone(params.checkpointId);
      const ck = await loadCheckpoint(b.path ?? '');
      try {
        const g = await ensureBackboneGraph(ck, { layer: params.layer, precision: params.precision, signal: job.signal, onProgress: (e) => job.progress(e.done, e.total, e.phase === 'hash' ? 'hashing weights' : 'building graph') });
        return { graphPath: g.graphPath, reused: g.reused };
      } finally {
        ck.close();
      }
    },
    BuildParams,
  );

  return {
    async doctor() {
      const probe = await probeGpus('auto');
      const choice = selectExecutionProvider('auto', probe);
      const kit = readKit();
      return {
        version: JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version as string,
        node: process.versions.node,
        platform: `${process.platform}-${process.arch}`,
        ep: choice.ep,
        epReason: choice.reason,
        checks: [
          { name: 'ONNX Runtime CUDA provider', ok: !!probe.providerLibrary, detail: probe.providerLibrary ?? 'not installed (CPU only)' },
          { name: 'NVIDIA GPU', ok: !!probe.gpu, detail: probe.gpu ?? 'none visible' },
          { name: 'WebGPU adapter', ok: !!probe.webgpuAvailable, detail: probe.webgpuAvailable ? 'available (--ep webgpu)' : (probe.webgpuError ?? (probe.cudaAvailable ? 'not probed (CUDA is used)' : 'not available')) },
          { name: 'demo kit', ok: !!kit, detail: kit ? `${kit.dir} (${DEMO_LABEL})` : 'not generated yet' },
          { name: `memory for ${LLAMA31_8B_L15.label}`, ...llama8bMemoryLine() },
          { name: `memory for ${GEMMA2_9B_L31.label}`, ok: precisionMemoryLine(GEMMA2_9B_L31.shape, GEMMA2_9B_L31.layer).ok, detail: precisionMemoryLine(GEMMA2_9B_L31.shape, GEMMA2_9B_L31.layer).detail },
          // Every registered checkpoint, all its blocks (the most a layer choice can need), per precision.
          ...dedupeByPath(store.models.backbones()).flatMap((b) => {
            try {
              const c = readModelConfig(b.path ?? '');
              const line = precisionMemoryLine(c, c.numLayers - 1);
              return [{ name: `memory for ${b.name} (all ${c.numLayers} blocks)`, ok: line.ok, detail: line.detail }];
            } catch {
              return [];
            }
          }),
        ],
      };
    },
    listModels() {
      const rms = store.models.rewardModels().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      // Held-out numbers from the same view as listRuns (the manifest, or the app's stored evaluation), whichever
      // front end trained the model.
      return [...dedupeByPath(store.models.backbones()).map(backboneInfo), ...dedupeByPath(store.models.saes()).map(saeInfo), ...rms.map((r) => { const info = rewardModelInfo(r); return { ...info, details: { ...info.details, ...trainedWith(r) }, heldOut: trainView(r)?.heldOut ?? null }; })];
    },
    async addCheckpoint(p) {
      return backboneInfo(await registerCheckpoint(store, p));
    },
    async addSae(p) {
      return saeInfo(await registerSae(store, p));
    },
    async checkCompatibility({ checkpointId, saeId, layer }) {
      const b = requireBackbone(checkpointId);
      const s = requireSae(saeId);
      const ck = await loadCheckpoint(b.path ?? '');
      try {
        const sae = await loadSae(s.path ?? '');
        const L = layer ?? sae.hookLayer ?? s.layer ?? null;
        const problems: string[] = [];
        if (L === null) return { ok: false, layer: null, problems: ['the SAE does not say which layer it was trained on: choose a layer'] };
        if (L >= ck.config.numLayers) problems.push(`layer ${L} does not exist: the checkpoint has ${ck.config.numLayers} layers (0–${ck.config.numLayers - 1})`);
        try {
          problems.push(...checkSaeForBackbone(sae, { checkpoint: ck.dir, hiddenSize: ck.config.hiddenSize, layer: L }).warnings.map((w) => `warning: ${w}`));
          ck.validateThrough(Math.min(L, ck.config.numLayers - 1));
        } catch (err) {
          problems.push(err instanceof Error ? err.message : String(err));
        }
        return { ok: problems.every((p) => p.startsWith('warning:')), layer: L, problems };
      } finally {
        ck.close();
      }
    },
    startBuild(i) {
      requireBackbone(i.checkpointId);
      return runner.start('build', i).id;
    },
  };
}
