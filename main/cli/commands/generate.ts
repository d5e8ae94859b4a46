/**
 * `sparserm generate`: the policy (a local checkpoint or an OpenAI-compatible endpoint) answers prompts with n
 * candidates each, SparseRM scores them, a recipe pairs them into a new dataset with lineage (issue 12). Runs as a
 * 'generate' job in the store, so an interrupted or cancelled run is resumed with --resume JOB (finished prompts
 * are not generated again). `--ids` continues raw token ids instead (generate-ids.ts).
 */
import fs from 'node:fs';

import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { JobRunner } from '../../engine/jobs';
import { GenerateParams, nextRoundParams, openPolicySource, registerGenerateJob, type GenerateResult } from '../../engine/generate/workflow';
import { RECIPES } from '../../engine/generate/recipes';
import { openStore, type Store } from '../../engine/store';
import type { PolicySpec } from '../../engine/store/generations';
import { action, printJson, progress } from '../output';
import { runGenerateIds, samplingOptions, type GenerateIdsOptions } from './generate-ids';
import { parseEp } from './hidden';
import { parseIntOpt } from './train';

interface GenerateOpts extends Omit<GenerateIdsOptions, 'checkpoint' | 'ids'> {
  checkpoint?: string;
  ids?: string;
  endpoint?: string;
  model?: string;
  prompts?: string;
  dataset?: string;
  n: string;
  rewardModel?: string;
  recipe?: string;
  preset?: string;
  instructionChosen?: string;
  instructionRejected?: string;
  delta?: string;
  round?: string;
  parent?: string;
  name?: string;
  nextRound?: string;
  resume?: string;
  db?: string;
}

function num(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InputError({ field: flag, expected: 'a number', got: JSON.stringify(v) });
  return n;
}

function rewardModelDir(store: Store, v: string | undefined): string {
  if (!v) throw new InputError({ field: '--reward-model', expected: 'a reward model id or folder (from `sparserm train`)' });
  if (fs.existsSync(v)) return v;
  const rm = store.models.rewardModel(v);
  if (!rm) throw new InputError({ field: '--reward-model', expected: 'a reward-model folder or the id of a registered reward model', got: JSON.stringify(v) });
  return rm.folder;
}

function policyOf(o: GenerateOpts): PolicySpec {
  if ((o.checkpoint === undefined) === (o.endpoint === undefined)) throw new InputError({ field: '--checkpoint/--endpoint', expected: 'exactly one of --checkpoint DIR or --endpoint URL --model NAME' });
  if (o.endpoint !== undefined) {
    if (!o.model) throw new InputError({ field: '--model', expected: 'the model name the endpoint serves (with --endpoint)' });
    return { kind: 'endpoint', url: o.endpoint, model: o.model };
  }
  return { kind: 'local', checkpoint: o.checkpoint!, precision: o.precision ?? 'f32', ep: parseEp(o.ep) };
}

/** Validated job parameters from the flags (InputError names the flag). */
function paramsOf(store: Store, o: GenerateOpts) {
  if (o.nextRound !== undefined) {
    const ds = store.datasets.resolve(o.nextRound);
    return nextRoundParams(store, ds.id, policyOf(o), o.name);
  }
  if ((o.prompts === undefined) === (o.dataset === undefined)) throw new InputError({ field: '--prompts/--dataset', expected: 'exactly one of --prompts FILE or --dataset NAME' });
  if (!o.recipe || !(RECIPES as readonly string[]).includes(o.recipe)) throw new InputError({ field: '--recipe', expected: RECIPES.join(' | '), got: JSON.stringify(o.recipe ?? '') });
  if ((o.instructionChosen === undefined) !== (o.instructionRejected === undefined)) throw new InputError({ field: '--instruction-chosen/--instruction-rejected', expected: 'both instructions or neither' });
  const raw = {
    name: o.name,
    prompts: o.prompts !== undefined ? { file: o.prompts } : { dataset: o.dataset! },
    policy: policyOf(o),
    sampling: {
      temperature: num('--temperature', o.temperature, 1),
      topP: num('--top-p', o.topP, 1),
      topK: parseIntOpt('--top-k', o.topK) ?? 0,
      seed: parseIntOpt('--seed', o.seed) ?? 0,
      maxNewTokens: parseIntOpt('--max-new-tokens', o.maxNewTokens, 1) ?? 64,
    },
    n: parseIntOpt('--n', o.n, 1)!,
    recipe: o.recipe,
    preset: o.preset,
    instructions: o.instructionChosen !== undefined ? { chosen: o.instructionChosen, rejected: o.instructionRejected! } : undefined,
    delta: o.delta !== undefined ? num('--delta', o.delta, 0) : undefined,
    rewardModel: rewardModelDir(store, o.rewardModel),
    round: parseIntOpt('--round', o.round, 1),
    parentDatasetId: o.parent !== undefined ? store.datasets.resolve(o.parent).id : undefined,
  };
  const r = GenerateParams.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const flag = `--${String(issue.path[issue.path.length - 1] ?? 'generate').replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`;
    throw new InputError({ field: flag, expected: issue.message });
  }
  return r.data;
}

function printResult(r: GenerateResult, json: boolean | undefined, jobId: string): void {
  if (json) return printJson({ jobId, ...r });
  process.stdout.write(
    `generation run ${r.runId} (job ${jobId}): ${r.prompts} prompts → ${r.candidates} candidates, ${r.tokens} tokens` +
      `${r.tokensPerSecond !== null ? ` (${r.tokensPerSecond.toFixed(1)} tokens/s)` : ''}\n` +
      `dataset "${r.dataset}" (round ${r.round}, recipe ${r.recipe}, policy ${r.policy}): ${r.pairs} pairs; SparseRM verdicts: kept ${r.kept}, dropped ${r.dropped}\n`,
  );
}

export function register(program: Command): void {
  samplingOptions(
    program
      .command('generate')
      .description('generate candidates with a policy, score them with SparseRM and pair them into a new dataset with lineage (or continue --ids)')
      .option('--checkpoint <dir>', 'policy: a local Hugging Face checkpoint folder')
      .option('--endpoint <url>', 'policy: an OpenAI-compatible chat-completions server (vLLM, TGI, llama.cpp, Ollama)')
      .option('--model <name>', 'the model name the endpoint serves')
      .option('--ids <ids>', 'comma-separated token ids continued without a chat template (with --checkpoint; --json prints {"tokens": [...]})')
      .option('--prompts <file>', 'prompts: JSONL with "prompt" (text or messages) or "messages", or plain text, one per line')
      .option('--dataset <name>', "prompts: a dataset's distinct prompts")
      .option('--n <n>', 'candidates per prompt (per instruction for --recipe instructed)', '4')
      .option('--reward-model <idOrDir>', 'SparseRM reward model (id or folder) that scores the candidates')
      .option('--recipe <recipe>', `how candidates become pairs: ${RECIPES.join(' | ')}`)
      .option('--preset <id>', 'instructed recipe: truthfulqa | saferlhf (default truthfulqa)')
      .option('--instruction-chosen <text>', 'instructed recipe: instruction of the chosen side (with --instruction-rejected; beats --preset)')
      .option('--instruction-rejected <text>', 'instructed recipe: instruction of the rejected side')
      .option('--delta <x>', 'margin recipe: keep pairs whose SparseRM margin exceeds this', '0')
      .option('--round <n>', 'round number recorded in the lineage (default 1)')
      .option('--parent <dataset>', 'the previous round\'s generated dataset (lineage)')
      .option('--next-round <dataset>', 'the next round of a generated dataset: same prompts, recipe and sampling, the policy given, round + 1')
      .option('--name <name>', 'name of the generated dataset (default <prompts>-<recipe>-r<round>)')
      .option('--resume <job>', 'resume an interrupted or cancelled generate job (finished prompts are skipped)')
      .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)'),
  )
    .option('--json', 'print the result as one JSON document on stdout')
    .action(
      action(async (o: GenerateOpts) => {
        if (o.ids !== undefined) {
          if (!o.checkpoint) throw new InputError({ field: '--checkpoint', expected: 'a checkpoint folder to continue --ids with' });
          await runGenerateIds({ ...o, checkpoint: o.checkpoint, ids: o.ids });
          return;
        }
        const store = openStore(o.db);
        const runner = new JobRunner(store);
        runner.recoverInterrupted();
        registerGenerateJob(runner, openPolicySource);
        let last = 0;
        const unsubscribe = runner.subscribe((s) => {
          const now = Date.now();
          if (s.message && (now - last > 1000 || s.status !== 'running')) {
            last = now;
            progress(`generate: ${s.message}`);
          }
        });
        try {
          const h = o.resume !== undefined ? runner.resume<GenerateResult>(o.resume) : runner.start<GenerateResult>('generate', paramsOf(store, o));
          const onSigint = () => {
            progress(`cancelling… resume later with: sparserm generate --resume ${h.id}`);
            h.cancel();
          };
          process.once('SIGINT', onSigint);
          try {
            printResult(await h.result, o.json, h.id);
          } catch (err) {
            if (!(err instanceof InputError)) progress(`the job can be resumed: sparserm generate --resume ${h.id}`);
            throw err;
          } finally {
            process.off('SIGINT', onSigint);
          }
        } finally {
          unsubscribe();
          store.close();
        }
      }),
    );
}
