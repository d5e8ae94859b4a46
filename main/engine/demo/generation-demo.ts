/**
 * The demo kit's generation loop (issue 12): the demo checkpoint, as the policy, answers a handful of the demo's
 * TruthfulQA prompts under the TruthfulQA instruction pair; SparseRM scores the candidates and drops the pairs whose
 * label it contradicts; round 2 does it again as the "next round" (same prompts, round + 1, parent = round 1);
 * round 2's kept pairs are exported with the lineage in the provenance. Random weights: the texts are gibberish,
 * the loop is real.
 */
import fs from 'node:fs';
import path from 'node:path';

import { exportDataset, type ExportResult } from '../data';
import { nextRoundParams, openPolicySource, runGeneration, type GenerateProgress, type GenerateResult, type OpenSource } from '../generate/workflow';
import type { EpRequest } from '../runtime/ort';
import type { Store } from '../store';
import type { DemoKit } from './kit';

export const DEMO_GENERATION_PROMPTS = 4;
export const DEMO_GENERATED = ['demo-generated-r1', 'demo-generated-r2'] as const;

export interface DemoGenerationResult {
  rounds: GenerateResult[];
  export: ExportResult;
}

export async function runDemoGeneration(
  store: Store,
  kit: DemoKit,
  rewardModelDir: string,
  opts: { outDir: string; datasetId: number; ep?: EpRequest; signal?: AbortSignal; onProgress?: (p: GenerateProgress & { round: number }) => void; openSource?: OpenSource },
): Promise<DemoGenerationResult> {
  // The demo owns these datasets: a re-run replaces them (generation runs stay, as history).
  for (const name of DEMO_GENERATED) {
    const d = store.datasets.byName(name);
    if (d) store.datasets.delete(d.id);
  }
  const seen = new Set<string>();
  const prompts: string[] = [];
  for (const p of store.pairs.iterate({ datasetId: opts.datasetId })) {
    if (seen.has(p.prompt)) continue;
    seen.add(p.prompt);
    prompts.push(p.prompt);
    if (prompts.length === DEMO_GENERATION_PROMPTS) break;
  }
  const promptsFile = path.join(opts.outDir, 'demo-generation-prompts.jsonl');
  fs.writeFileSync(promptsFile, prompts.map((prompt) => JSON.stringify({ prompt })).join('\n') + '\n');
  const openSource = opts.openSource ?? openPolicySource;
  const policy = { kind: 'local' as const, checkpoint: kit.checkpoint, ...(opts.ep ? { ep: opts.ep } : {}) };
  const r1 = await runGeneration(
    store,
    {
      name: DEMO_GENERATED[0],
      prompts: { file: promptsFile },
      policy,
      sampling: { temperature: 1, topP: 0.95, topK: 0, seed: 1, maxNewTokens: 12 },
      n: 2,
      recipe: 'instructed',
      preset: 'truthfulqa',
      rewardModel: rewardModelDir,
    },
    { openSource, signal: opts.signal, onProgress: (p) => opts.onProgress?.({ ...p, round: 1 }) },
  );
  // "Next round": after a DPO step the user points at the new checkpoint; the demo has one, so it reuses it.
  const r2 = await runGeneration(store, nextRoundParams(store, r1.datasetId, policy, DEMO_GENERATED[1]), { openSource, signal: opts.signal, onProgress: (p) => opts.onProgress?.({ ...p, round: 2 }) });
  const exported = await exportDataset(store, { dataset: r2.datasetId, out: path.join(opts.outDir, `${DEMO_GENERATED[1]}.kept.jsonl`), format: 'standard', overwrite: true, signal: opts.signal });
  return { rounds: [r1, r2], export: exported };
}
