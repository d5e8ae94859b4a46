/**
 * `sparserm generate --ids 2,651,…`: continue raw token ids (no chat template) with the local KV-cache decoder.
 * `runGenerateIds` is what the full `generate` command calls when --ids is given; `register` adds a minimal
 * `generate` command only while no other module has registered one (the prompts/dataset command supersedes it).
 */
import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { openDecoder } from '../../engine/generate/decoder';
import { checkSamplingParams } from '../../engine/generate/sampler';
import { parsePrecision } from '../../engine/backbone/linear-weights';
import { action, printJson } from '../output';
import { openProgress, parseEp, parseIds } from './hidden';

export interface GenerateIdsOptions {
  checkpoint: string;
  /** Comma-separated ids, as typed. */
  ids: string;
  temperature?: string;
  topP?: string;
  topK?: string;
  seed?: string;
  maxNewTokens?: string;
  precision?: string;
  ep?: string;
  json?: boolean;
}

function num(v: string | undefined, field: string, dflt: number, integer = false): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InputError({ field, expected: integer ? 'an integer' : 'a number', got: JSON.stringify(v) });
  }
  return n;
}

/** Runs the --ids path; prints `{"tokens": […]}` with --json, else the ids comma-separated. */
export async function runGenerateIds(opts: GenerateIdsOptions): Promise<{ tokens: number[]; finishReason: string; logprob: number }> {
  const prompt = parseIds(opts.ids);
  const params = {
    temperature: num(opts.temperature, '--temperature', 1),
    topP: num(opts.topP, '--top-p', 1),
    topK: num(opts.topK, '--top-k', 0, true),
    seed: num(opts.seed, '--seed', 0, true),
    maxNewTokens: num(opts.maxNewTokens, '--max-new-tokens', 64, true),
  };
  try {
    checkSamplingParams(params);
  } catch (err) {
    if (err instanceof InputError) throw new InputError({ ...err.details, field: `--${err.details.field!.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}` });
    throw err;
  }
  const dec = await openDecoder({ checkpoint: opts.checkpoint, precision: parsePrecision(opts.precision, '--precision'), ep: parseEp(opts.ep), onProgress: openProgress() });
  try {
    const [g] = await dec.generateIds([prompt], params).catch((err: unknown) => {
      if (err instanceof InputError && err.details.field === 'maxNewTokens') throw new InputError({ ...err.details, field: '--max-new-tokens' });
      throw err;
    });
    const result = { tokens: g.tokens, finishReason: g.finishReason, logprob: g.logprob };
    if (opts.json) printJson({ tokens: g.tokens, finishReason: g.finishReason, logprob: g.logprob, stopToken: g.stopToken ?? null });
    else process.stdout.write(`${g.tokens.join(',')}\n`);
    return result;
  } finally {
    await dec.close();
  }
}

/** Adds the sampling options shared by every `generate` flavour. */
export function samplingOptions(cmd: Command): Command {
  return cmd
    .option('--temperature <t>', 'sampling temperature; 0 = greedy (argmax, ties to the lowest id)', '1')
    .option('--top-p <p>', 'nucleus mass in (0, 1]; 1 = off', '1')
    .option('--top-k <k>', 'keep the k most likely tokens; 0 = off', '0')
    .option('--seed <n>', 'RNG seed (same seed and params → same tokens)', '0')
    .option('--max-new-tokens <n>', 'stop after this many new tokens', '64')
    .option('--precision <p>', 'f32 | f16 | int8 | int4', 'f32')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda', 'auto');
}

export function register(program: Command): void {
  if (program.commands.some((c) => c.name() === 'generate')) return;
  samplingOptions(
    program
      .command('generate')
      .description('continue token ids with the local KV-cache decoder (the policy checkpoint)')
      .requiredOption('--checkpoint <dir>', 'Hugging Face checkpoint folder (config.json + safetensors)')
      .requiredOption('--ids <ids>', 'comma-separated prompt token ids, continued without a chat template'),
  )
    .option('--json', 'print {"tokens": [...]} on stdout')
    .action(action(async (o: GenerateIdsOptions) => void (await runGenerateIds(o))));
}
