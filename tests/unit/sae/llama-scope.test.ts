import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { writeSafetensors, type FloatDtype } from '../../../main/engine/formats/safetensors';
import { checkSaeForBackbone, jumpReluSubset, loadSae, SaeEncoder, type SaeEncoding } from '../../../main/engine/sae';
import { fixturesDir, tempDir } from '../../helpers/paths';
import { rng } from '../backbone/random-checkpoint';

/**
 * Llama Scope SAEs: tiny random ones in both layouts (release folder, SAELens conversion), bf16 and f32, against a
 * float64 reference written from the two encodings' definitions (docs/sparserm.md, "SAE formats"), with decoder
 * columns far from unit norm so the encodings really disagree. Tolerance 1e-4 · max(1, |value|) (f32 matmuls).
 */
const work = tempDir('sparserm-llama-scope-');
const graphsDir = path.join(work, 'graphs');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const D_IN = 16;
const D_SAE = 48;
const T = 0.35546875;
const NORM_IN = 2.5;

interface RawSae {
  enc: Float32Array; // [dSae, dIn] (nn.Linear)
  bEnc: Float32Array;
  dec: Float32Array; // [dIn, dSae]
  bDec: Float32Array;
}

function randomRaw(seed: number, dtype: FloatDtype): RawSae {
  const r = rng(seed);
  const round = (a: Float32Array) => (dtype === 'BF16' ? a.map((v) => new Float32Array(new Uint32Array([new Uint32Array(new Float32Array([v]).buffer)[0]! & 0xffff0000]).buffer)[0]!) : a);
  const enc = Float32Array.from({ length: D_SAE * D_IN }, () => r() * 0.6);
  const bEnc = Float32Array.from({ length: D_SAE }, () => r() * 0.5);
  // Column j scaled by 0.3 … 2.7: decoder norms far from 1 (the release's mean is ≈ 1.5).
  const colScale = Array.from({ length: D_SAE }, (_, j) => 0.3 + (2.4 * j) / (D_SAE - 1));
  const dec = Float32Array.from({ length: D_IN * D_SAE }, (_, k) => (r() * colScale[k % D_SAE]!) / Math.sqrt(D_IN / 3));
  const bDec = Float32Array.from({ length: D_IN }, () => r() * 0.1);
  return { enc: round(enc), bEnc: round(bEnc), dec: round(dec), bDec: round(bDec) };
}

function writeRelease(dir: string, raw: RawSae, dtype: FloatDtype, layer = 15): string {
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'hyperparams.json'),
    JSON.stringify({
      d_model: D_IN, d_sae: D_SAE, hook_point_in: `blocks.${layer}.hook_resid_post`, hook_point_out: `blocks.${layer}.hook_resid_post`,
      act_fn: 'jumprelu', jump_relu_threshold: T, norm_activation: 'dataset-wise', dataset_average_activation_norm: { in: NORM_IN, out: NORM_IN },
      apply_decoder_bias_to_pre_encoder: false, top_k: 50, use_decoder_bias: true,
    }),
  );
  writeSafetensors(path.join(dir, 'checkpoints', 'final.safetensors'), {
    'encoder.weight': { dtype, shape: [D_SAE, D_IN], data: raw.enc },
    'encoder.bias': { dtype, shape: [D_SAE], data: raw.bEnc },
    'decoder.weight': { dtype, shape: [D_IN, D_SAE], data: raw.dec },
    'decoder.bias': { dtype, shape: [D_IN], data: raw.bDec },
  });
  return dir;
}

/** SAELens's conversion: W_enc = encoder.weight.T, W_dec = decoder.weight.T, threshold = t for every latent. */
function writeSaeLens(dir: string, raw: RawSae, cfgOver: Record<string, unknown> = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const tr = (a: Float32Array, rows: number, cols: number) => Float32Array.from({ length: a.length }, (_, k) => a[(k % rows) * cols + Math.floor(k / rows)]!);
  fs.writeFileSync(
    path.join(dir, 'cfg.json'),
    JSON.stringify({
      architecture: 'jumprelu', d_in: D_IN, d_sae: D_SAE, hook_name: 'blocks.15.hook_resid_post', hook_layer: 15, apply_b_dec_to_input: false,
      normalize_activations: 'expected_average_only_in', jump_relu_threshold: T, model_name: 'meta-llama/Llama-3.1-8B',
      dataset_average_activation_norm: { in: NORM_IN, out: NORM_IN }, ...cfgOver,
    }),
  );
  writeSafetensors(path.join(dir, 'sae_weights.safetensors'), {
    W_enc: { dtype: 'F32', shape: [D_IN, D_SAE], data: tr(raw.enc, D_SAE, D_IN) },
    b_enc: { dtype: 'F32', shape: [D_SAE], data: raw.bEnc },
    W_dec: { dtype: 'F32', shape: [D_SAE, D_IN], data: tr(raw.dec, D_IN, D_SAE) },
    b_dec: { dtype: 'F32', shape: [D_IN], data: raw.bDec },
    threshold: { dtype: 'F32', shape: [D_SAE], data: new Float32Array(D_SAE).fill(T) },
  });
  return dir;
}

/** float64 reference: h_j = enc[j]·x + b_j / s, s = sqrt(d_in) / norm_in. */
function reference(raw: RawSae, x: Float32Array, rows: number, encoding: SaeEncoding): Float64Array {
  const s = Math.sqrt(D_IN) / NORM_IN;
  const out = new Float64Array(rows * D_SAE);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < D_SAE; j++) {
      let h = raw.bEnc[j]! / s;
      for (let i = 0; i < D_IN; i++) h += raw.enc[j * D_IN + i]! * x[r * D_IN + i]!;
      if (encoding === 'saelens') out[r * D_SAE + j] = h > T ? s * h : 0;
      else {
        let n = 0;
        for (let i = 0; i < D_IN; i++) n += raw.dec[i * D_SAE + j]! ** 2;
        const v = Math.sqrt(n) * h;
        out[r * D_SAE + j] = v > T ? v : 0;
      }
    }
  }
  return out;
}

function residuals(rows: number, seed: number): Float32Array {
  const r = rng(seed);
  // Raw residuals with norms of the order of norm_in, the scale the SAE was normalised to.
  return Float32Array.from({ length: rows * D_IN }, () => r() * NORM_IN * 0.9);
}

function expectClose(got: ArrayLike<number>, want: Float64Array, what: string) {
  expect(got.length).toBe(want.length);
  let err = 0;
  for (let k = 0; k < want.length; k++) {
    err = Math.max(err, Math.abs(got[k]! - want[k]!) / Math.max(1, Math.abs(want[k]!)));
  }
  expect(err, what).toBeLessThanOrEqual(1e-4);
}

const rows = 40;
const x = residuals(rows, 7);

describe('Llama Scope release folder (hyperparams.json + checkpoints/final.safetensors)', () => {
  for (const dtype of ['BF16', 'F32'] as const) {
    it(`${dtype}: SAELens's encoding by default, the authors' as an option, both match the float64 reference in ORT and the subset encoder`, async () => {
      const raw = randomRaw(dtype === 'BF16' ? 1 : 2, dtype);
      const dir = writeRelease(path.join(work, `Llama3_1-8B-Base-L15R-8x-${dtype}`), raw, dtype);
      const results: Record<string, Float32Array> = {};
      for (const encoding of [undefined, 'saelens', 'authors'] as const) {
        const sae = await loadSae(dir, encoding ? { encoding } : {});
        const want = reference(raw, x, rows, encoding ?? 'saelens');
        expect(sae.format).toBe('llama-scope');
        expect(sae.encoding).toBe(encoding ?? 'saelens');
        expect([sae.dIn, sae.dSae, sae.hookLayer, sae.inputNorm]).toEqual([D_IN, D_SAE, 15, NORM_IN]);
        expect(sae.trainedOn).toMatch(/base model/);
        const enc = await SaeEncoder.open(sae, { ep: 'cpu', graphsDir });
        const f = await enc.encode(x, rows);
        await enc.close();
        expectClose(f, want, `${dtype} ${encoding ?? 'default'} (ORT)`);
        expectClose(jumpReluSubset(sae, x, rows, Array.from({ length: D_SAE }, (_, j) => j)), want, `${dtype} ${encoding} (subset)`);
        results[encoding ?? 'default'] = f;
        if (encoding === 'authors') expect(sae.id).toContain('+authors@');
      }
      expect(results.default).toEqual(results.saelens);
      // The encodings disagree with non-unit decoder norms: different firing sets, not just a scale.
      const fires = (a: Float32Array) => a.reduce((n, v) => n + (v > 0 ? 1 : 0), 0);
      expect(fires(results.saelens!)).not.toBe(fires(results.authors!));
      expect(fires(results.saelens!)).toBeGreaterThan(0);
      const [a, b] = [await loadSae(dir), await loadSae(dir, { encoding: 'authors' })];
      expect(a.hash).not.toBe(b.hash);
    });
  }

  it("SAELens's decoder as stored; the authors' unit-norm columns", async () => {
    const raw = randomRaw(3, 'F32');
    const dir = writeRelease(path.join(work, 'dec'), raw, 'F32');
    const a = await loadSae(dir);
    const b = await loadSae(dir, { encoding: 'authors' });
    const rowNorm = (w: Float32Array, j: number) => Math.hypot(...w.subarray(j * D_IN, (j + 1) * D_IN));
    for (const j of [0, 20, 47]) {
      let n = 0;
      for (let i = 0; i < D_IN; i++) n += raw.dec[i * D_SAE + j]! ** 2;
      expect(rowNorm(a.W_dec, j)).toBeCloseTo(Math.sqrt(n), 5);
      expect(rowNorm(b.W_dec, j)).toBeCloseTo(1, 5);
    }
  });
});

describe("SAELens's Llama Scope layout (cfg.json expected_average_only_in + sae_weights.safetensors)", () => {
  it('reads to the same tensors and hash as the release folder, in both encodings', async () => {
    const raw = randomRaw(4, 'F32');
    const rel = writeRelease(path.join(work, 'rel-4'), raw, 'F32');
    const lens = writeSaeLens(path.join(work, 'lens-4'), raw);
    for (const encoding of ['saelens', 'authors'] as const) {
      const [a, b] = [await loadSae(rel, { encoding }), await loadSae(lens, { encoding })];
      expect(b.format).toBe('saelens');
      expect(b.encoding).toBe(encoding);
      expect(b.trainedOn).toBe('meta-llama/Llama-3.1-8B');
      expect(b.hash).toBe(a.hash);
      expectClose(jumpReluSubset(b, x, rows, Array.from({ length: D_SAE }, (_, j) => j)), reference(raw, x, rows, encoding), `SAELens layout ${encoding}`);
    }
  });

  it('refuses a missing input norm, naming the field', async () => {
    const raw = randomRaw(5, 'F32');
    const lens = writeSaeLens(path.join(work, 'lens-5'), raw, { dataset_average_activation_norm: undefined });
    const err = await loadSae(lens).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).details.field).toBe('dataset_average_activation_norm');
  });
});

describe('bad Llama Scope input and validation against the backbone', () => {
  it('token-wise folders, a wrong tensor shape and the authors encoding on Gemma Scope are refused with the file and field', async () => {
    const raw = randomRaw(6, 'F32');
    const dir = writeRelease(path.join(work, 'tokenwise'), raw, 'F32');
    const hp = JSON.parse(fs.readFileSync(path.join(dir, 'hyperparams.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'hyperparams.json'), JSON.stringify({ ...hp, norm_activation: 'token-wise' }));
    await expect(loadSae(dir)).rejects.toThrow(/field "norm_activation".*dataset-wise.*got "token-wise"/);
    fs.writeFileSync(path.join(dir, 'hyperparams.json'), JSON.stringify({ ...hp, d_model: D_IN + 1 }));
    await expect(loadSae(dir)).rejects.toThrow(/final\.safetensors.*encoder\.weight.*shape \[48, 17\]/);
    await expect(loadSae(path.join(fixturesDir, 'sae-tiny', 'params.npz'), { encoding: 'authors' })).rejects.toThrow(/field "encoding".*Llama Scope SAEs only/);
  });

  it('d_model ≠ hidden_size is an error; another hook layer and a base SAE on an instruct checkpoint are warnings', async () => {
    const raw = randomRaw(7, 'F32');
    const sae = await loadSae(writeRelease(path.join(work, 'Llama3_1-8B-Base-L15R-8x'), raw, 'F32'));
    const ckpt = path.join(work, 'instruct-ckpt');
    fs.mkdirSync(ckpt, { recursive: true });
    fs.writeFileSync(path.join(ckpt, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ bos_token }}' }));
    expect(() => checkSaeForBackbone(sae, { checkpoint: ckpt, hiddenSize: D_IN * 2, layer: 15 })).toThrow(InputError);
    const { warnings } = checkSaeForBackbone(sae, { checkpoint: ckpt, hiddenSize: D_IN, layer: 12 });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/trained on layer 15 .* layer 12/);
    expect(warnings[1]).toMatch(/Llama3_1-8B-Base \(base model.*instruction-tuned checkpoint \(instruct-ckpt\)/);
    // A base checkpoint (no chat template): no base/instruct warning.
    fs.rmSync(path.join(ckpt, 'tokenizer_config.json'));
    expect(checkSaeForBackbone(sae, { checkpoint: ckpt, hiddenSize: D_IN, layer: 15 }).warnings).toEqual([]);
  });
});
