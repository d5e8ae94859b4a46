/**
 * Hostile model files through the CLI (issue 9, rows 9 and 10): each is exit 2 (bad input) with one stderr line
 * naming the file and the field / tensor / entry, where they used to be exit 0 (NaN printed) or exit 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';

import { openSafetensors, writeSafetensors } from '../../../main/engine/formats/safetensors';
import { fixturesDir, repoRoot, tempDir } from '../../helpers/paths';

const work = tempDir('sparserm-hostile-cli-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
const ckpt = path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32');

function cli(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args], {
    env: { ...process.env, SPARSERM_HOME: path.join(work, 'home'), SPARSERM_CACHE: path.join(work, 'cache') },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function copyCheckpoint(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(ckpt)) fs.copyFileSync(path.join(ckpt, f), path.join(dir, f));
  return dir;
}

describe('hostile model files through the CLI', () => {
  it('hidden on a checkpoint with NaN weights: exit 2 naming the file and tensor (was exit 0 printing NaN)', () => {
    const dir = copyCheckpoint('nan');
    const file = path.join(dir, 'model.safetensors');
    const st = openSafetensors(file);
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, e] of st.entries) t[name] = { dtype: 'F32', shape: e.shape, data: st.readF32(name) };
    st.close();
    t['model.layers.0.mlp.down_proj.weight'].data[3] = NaN;
    writeSafetensors(file, t);
    const r = cli(['hidden', '--checkpoint', dir, '--layer', '1', '--ids', '2,17', '--ep', 'cpu', '--json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file}, tensor "model.layers.0.mlp.down_proj.weight": expected finite weights (no NaN or Inf), got NaN at index 3`);
    expect(r.stdout).not.toMatch(/NaN/);
  });

  it('hidden on num_hidden_layers = 1e9 and on a string size: exit 2 naming config.json and the field', () => {
    const dir = copyCheckpoint('huge');
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_hidden_layers: 1e9 }));
    const r = cli(['hidden', '--checkpoint', dir, '--layer', '0', '--ids', '2', '--ep', 'cpu']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/config\.json, field "num_hidden_layers": expected at most 1024 \(a sanity limit far above any released model\), got 1000000000/);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, head_dim: '24' }));
    const r2 = cli(['hidden', '--checkpoint', dir, '--layer', '0', '--ids', '2', '--ep', 'cpu']);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/config\.json, field "head_dim": expected a number, got the string "24"/);
    expect(r2.stderr).not.toMatch(/expected expected/);
  });

  it('latents with an SAE whose zip64 size fields are impossible: exit 2 naming the file and entry (was exit 1, "Invalid typed array length")', () => {
    // One stored entry whose zip64 extra declares 2^52 uncompressed bytes.
    const body = Buffer.from('not even an array');
    const name = Buffer.from('W_enc.npy');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(name.length, 26);
    const extra = Buffer.alloc(20);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(16, 2);
    extra.writeBigUInt64LE(1n << 52n, 4);
    extra.writeBigUInt64LE(BigInt(body.length), 12);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt32LE(zlib.crc32(body), 16);
    cd.writeUInt32LE(0xffffffff, 20);
    cd.writeUInt32LE(0xffffffff, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(extra.length, 30);
    const cdAll = Buffer.concat([cd, name, extra]);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(cdAll.length, 12);
    end.writeUInt32LE(30 + name.length + body.length, 16);
    const file = path.join(work, 'params.npz');
    fs.writeFileSync(file, Buffer.concat([local, name, body, cdAll, end]));
    const r = cli(['latents', '--checkpoint', ckpt, '--layer', '2', '--sae', file, '--ids', '2', '--ep', 'cpu']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file}, field "uncompressed size", tensor "W_enc.npy"`);
    expect(r.stderr).not.toMatch(/Invalid typed array length/);
  });
});
