import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

import { writeNpz } from '../../../main/engine/formats/npz';
import { writeSafetensors } from '../../../main/engine/formats/safetensors';
import { fixturesDir, repoRoot, tempDir } from '../../helpers/paths';

// `sparserm latents` end to end (spawned CLI: backbone graph → JumpReLU graph in ORT) against references:
// sae-tiny/reference.json (≤ 1e-5, PyTorch-made) and, for SAEs it has never seen, a float64 JumpReLU of the
// backbone fixture's resid_post[2] (≤ 1e-4: the ORT backbone's own error is ~1e-5 and W_enc amplifies it).
const ckpt = path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32');
const home = tempDir('sparserm-home-');

function latentsCli(args: string[]): { layer: number; ids: number[]; latents: Array<Array<[number, number]>> } {
  const out = execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'latents', '--json', ...args], {
    env: { ...process.env, SPARSERM_HOME: home },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out);
}

function denseFrom(rows: Array<Array<[number, number]>>, width: number): number[][] {
  return rows.map((r) => {
    const d = new Array<number>(width).fill(0);
    for (const [j, v] of r) d[j] = v;
    return d;
  });
}

interface SaeRef { cases: Array<{ ids: number[]; layer: number; activations: number[][] }> }
interface BbRef { cases: Array<{ ids: number[]; resid_post: number[][][] }> }

describe('sparserm latents (CLI)', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'sae-tiny', 'reference.json'), 'utf8')) as SaeRef;
  const bb = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32.reference.json'), 'utf8')) as BbRef;

  for (const sae of ['params.npz', 'saelens']) {
    it(`matches sae-tiny/reference.json within 1e-5 (${sae}), every token incl. BOS, sorted largest first`, () => {
      for (const c of ref.cases) {
        const res = latentsCli(['--checkpoint', ckpt, '--layer', String(c.layer), '--sae', path.join(fixturesDir, 'sae-tiny', sae), '--ids', c.ids.join(',')]);
        expect(res.layer).toBe(c.layer);
        expect(res.ids).toEqual(c.ids);
        expect(res.latents).toHaveLength(c.ids.length);
        const dense = denseFrom(res.latents, 64);
        let maxErr = 0;
        dense.forEach((row, t) => row.forEach((v, j) => (maxErr = Math.max(maxErr, Math.abs(v - c.activations[t][j])))));
        expect(maxErr).toBeLessThanOrEqual(1e-5);
        for (const row of res.latents) for (let i = 1; i < row.length; i++) expect(row[i - 1][1]).toBeGreaterThanOrEqual(row[i][1]);
      }
    });
  }

  describe('on SAEs it has never seen', () => {
    const dIn = 32;
    const dSae = 40;
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const W_enc = Float32Array.from({ length: dIn * dSae }, rnd);
    const b_enc = Float32Array.from({ length: dSae }, () => rnd() * 0.3);
    const W_dec = Float32Array.from({ length: dSae * dIn }, rnd);
    const b_dec = Float32Array.from({ length: dIn }, rnd);
    const threshold = Float32Array.from({ length: dSae }, () => 0.5 + Math.abs(rnd()));
    let dir: string;
    beforeAll(async () => {
      dir = tempDir();
      const arrays = {
        W_enc: { shape: [dIn, dSae], data: W_enc }, W_dec: { shape: [dSae, dIn], data: W_dec },
        b_enc: { shape: [dSae], data: b_enc }, b_dec: { shape: [dIn], data: b_dec }, threshold: { shape: [dSae], data: threshold },
      };
      await writeNpz(path.join(dir, 'deflated.npz'), arrays, { compress: true });
      await writeNpz(path.join(dir, 'stored.npz'), arrays, { compress: false });
      fs.mkdirSync(path.join(dir, 'lens'));
      fs.writeFileSync(path.join(dir, 'lens', 'cfg.json'), JSON.stringify({ architecture: 'jumprelu', d_in: dIn, d_sae: dSae, hook_name: 'blocks.2.hook_resid_post', apply_b_dec_to_input: false, normalize_activations: null }));
      writeSafetensors(path.join(dir, 'lens', 'sae_weights.safetensors'), {
        W_enc: { dtype: 'F32', shape: [dIn, dSae], data: W_enc }, W_dec: { dtype: 'F32', shape: [dSae, dIn], data: W_dec },
        b_enc: { dtype: 'F32', shape: [dSae], data: b_enc }, b_dec: { dtype: 'F32', shape: [dIn], data: b_dec },
        log_threshold: { dtype: 'F32', shape: [dSae], data: threshold.map(Math.log) },
      });
    });

    for (const which of ['deflated.npz', 'stored.npz', 'lens']) {
      it(`agrees with a float64 JumpReLU of the reference residuals (${which}); --top keeps the strongest`, () => {
        const c = bb.cases[1];
        const x = c.resid_post[2];
        const expected = x.map((row) =>
          Array.from({ length: dSae }, (_, j) => {
            let pre = b_enc[j];
            for (let i = 0; i < dIn; i++) pre += row[i] * W_enc[i * dSae + j];
            return pre > threshold[j] ? pre : 0;
          }),
        );
        expect(expected.flat().filter((v) => v > 0).length).toBeGreaterThan(5);
        const res = latentsCli(['--checkpoint', ckpt, '--layer', '2', '--sae', path.join(dir, which), '--ids', c.ids.join(',')]);
        const dense = denseFrom(res.latents, dSae);
        let maxErr = 0;
        dense.forEach((row, t) => row.forEach((v, j) => (maxErr = Math.max(maxErr, Math.abs(v - expected[t][j])))));
        expect(maxErr).toBeLessThanOrEqual(1e-4);
        const top = latentsCli(['--checkpoint', ckpt, '--layer', '2', '--sae', path.join(dir, which), '--ids', c.ids.join(','), '--top', '2']);
        top.latents.forEach((row, t) => {
          expect(row.length).toBeLessThanOrEqual(2);
          const best = [...expected[t].entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([j]) => j);
          expect(row.map(([j]) => j)).toEqual(best);
        });
      });
    }

    it('refuses an SAE whose d_in does not match the backbone, exit code 2, naming both', () => {
      const bad = path.join(dir, 'wide.npz');
      const n = 48;
      return writeNpz(bad, {
        W_enc: { shape: [n, 4], data: new Float32Array(n * 4) }, W_dec: { shape: [4, n], data: new Float32Array(n * 4) },
        b_enc: { shape: [4], data: new Float32Array(4) }, b_dec: { shape: [n], data: new Float32Array(n) }, threshold: { shape: [4], data: new Float32Array(4) },
      }).then(() => {
        let err: { status?: number; stderr?: string } = {};
        try {
          latentsCli(['--checkpoint', ckpt, '--layer', '2', '--sae', bad, '--ids', '2,10']);
        } catch (e) {
          err = e as typeof err;
        }
        expect(err.status).toBe(2);
        expect(String(err.stderr)).toMatch(/wide\.npz vs .*checkpoint-f32\/config\.json.*hidden_size 32.*d_in 48/);
      });
    });
  });
});
