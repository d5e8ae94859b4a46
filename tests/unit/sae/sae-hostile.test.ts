/**
 * Hostile SAEs (issue 9, rows 4, 9, 10): NaN weights, a tensor whose header is not the shape W_enc implies
 * (refused from its .npy header, before its data is inflated), absurd cfg.json sizes and plain-word messages.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadSae } from '../../../main/engine/sae';
import { openNpz, writeNpz } from '../../../main/engine/formats/npz';
import { InputError } from '../../../main/engine/errors';
import { fixturesDir, tempDir } from '../../helpers/paths';

const saeDir = path.join(fixturesDir, 'sae-tiny');
const work = tempDir('sae-hostile-');

async function fixtureTensors(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
  const npz = await openNpz(path.join(saeDir, 'params.npz'));
  try {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const name of npz.entries.keys()) out[name] = await npz.readF32(name);
    return out;
  } finally {
    await npz.close();
  }
}

async function rejection(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe('hostile params.npz', () => {
  it('refuses NaN weights, naming the file, tensor and index', async () => {
    const t = await fixtureTensors();
    t.W_dec.data[10] = NaN;
    const file = path.join(work, 'nan.npz');
    await writeNpz(file, t, { compress: true });
    const err = await rejection(loadSae(file));
    expect(err.message).toBe(`${file}, tensor "W_dec": expected finite weights (no NaN or Inf), got NaN at index 10 of shape [64, 32]`);
  });

  it('refuses a tensor of the wrong shape from its header, before reading its data', async () => {
    const t = await fixtureTensors();
    // b_enc claims 4M latents (16 MiB of zeros, a few KB deflated): refused from the header alone.
    t.b_enc = { shape: [4 << 20], data: new Float32Array(4 << 20) };
    const file = path.join(work, 'wide.npz');
    await writeNpz(file, t, { compress: true });
    expect(fs.statSync(file).size).toBeLessThan(200_000);
    const err = await rejection(loadSae(file));
    expect(err.message).toBe(`${file}, tensor "b_enc": expected shape [64] (from W_enc [32, 64]), got [4194304]`);
  });
});

describe('hostile SAELens cfg.json', () => {
  function lens(cfg: Record<string, unknown>): string {
    const dir = fs.mkdtempSync(path.join(work, 'lens-'));
    fs.copyFileSync(path.join(saeDir, 'saelens', 'sae_weights.safetensors'), path.join(dir, 'sae_weights.safetensors'));
    const base = JSON.parse(fs.readFileSync(path.join(saeDir, 'saelens', 'cfg.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify({ ...base, ...cfg }));
    return dir;
  }

  it('names the field in plain words, once', async () => {
    const dir = lens({ d_in: '32' });
    const err = await rejection(loadSae(dir));
    expect(err.message).toBe(`${path.join(dir, 'cfg.json')}, field "d_in": expected a number, got the string "32"`);
  });

  it('refuses absurd sizes', async () => {
    const dir = lens({ d_sae: 1e12 });
    expect((await rejection(loadSae(dir))).message).toBe(`${path.join(dir, 'cfg.json')}, field "d_sae": expected a number of at most 16777216, got 1000000000000`);
  });
});
