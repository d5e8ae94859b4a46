import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { openNpz, readNpz, writeNpz, decodeNpy, npyHeaderBytes } from '../../../main/engine/formats/npz';
import { InputError } from '../../../main/engine/errors';
import { fixturesDir, tempDir } from '../../helpers/paths';

const saeNpz = path.join(fixturesDir, 'sae-tiny', 'params.npz');

function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function expectInputError(p: Promise<unknown>, re: RegExp): Promise<InputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  expect((err as Error).message).toMatch(re);
  return err as InputError;
}

describe('npz reader on the Gemma Scope fixture', () => {
  it('lists the five SAE arrays (deflated) and decodes their shapes', async () => {
    const npz = await openNpz(saeNpz);
    try {
      expect([...npz.entries.keys()].sort()).toEqual(['W_dec', 'W_enc', 'b_dec', 'b_enc', 'threshold']);
      expect(npz.entries.get('W_enc')!.method).toBe('deflated');
      const wEnc = await npz.readF32('W_enc');
      const wDec = await npz.readF32('W_dec.npy');
      expect(wEnc.shape).toEqual([32, 64]);
      expect(wDec.shape).toEqual([64, 32]);
      // The fixture's decoder rows are unit norm (README): a real check that values decode right, not just shapes.
      for (let j = 0; j < 64; j++) {
        let s = 0;
        for (let i = 0; i < 32; i++) s += wDec.data[j * 32 + i] ** 2;
        expect(Math.sqrt(s)).toBeCloseTo(1, 5);
      }
    } finally {
      await npz.close();
    }
  });
});

describe('npz writer', () => {
  const arrays = {
    a: { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2) },
    b: { shape: [5], data: Float64Array.from([1e-300, -2, 3.25, Math.PI, 0]) },
    c: { shape: [2, 2, 2], data: Int32Array.from([1, -2, 3, -4, 5, -6, 7, 2 ** 31 - 1]) },
    d: { shape: [4], data: BigInt64Array.from([1n, -1n, 2n ** 40n, 0n]) },
    e: { shape: [0], data: new Float32Array(0) },
  };

  for (const [label, opts] of [
    ['stored', { compress: false }],
    ['deflated', { compress: true }],
    ['zip64 stored', { forceZip64: true }],
    ['zip64 deflated', { compress: true, forceZip64: true }],
  ] as const) {
    it(`round-trips ${label} arrays of several dtypes`, async () => {
      const dir = tempDir();
      const file = path.join(dir, 'x.npz');
      await writeNpz(file, arrays, opts);
      const back = await readNpz(file);
      expect([...back.keys()]).toEqual(Object.keys(arrays));
      for (const [name, arr] of Object.entries(arrays)) {
        expect(back.get(name)!.shape).toEqual(arr.shape);
        expect(Array.from(back.get(name)!.data as ArrayLike<number | bigint>)).toEqual(Array.from(arr.data as ArrayLike<number | bigint>));
      }
      expect(back.get('a')!.dtype).toBe('f4');
      expect(back.get('d')!.dtype).toBe('i8');
      // No temp files left beside the target.
      expect(fs.readdirSync(dir)).toEqual(['x.npz']);
    });
  }

  it.skipIf(!hasNumpy())('decodes the fixture (Fortran-order W_enc) exactly as numpy does', async () => {
    const ref = JSON.parse(
      execFileSync('python3', ['-c', `import numpy as np, json; z=np.load(${JSON.stringify(saeNpz)}); print(json.dumps({k: z[k].astype(float).ravel(order='C').tolist() for k in z}))`]).toString(),
    ) as Record<string, number[]>;
    const ours = await readNpz(saeNpz);
    for (const [k, values] of Object.entries(ref)) expect(Array.from(ours.get(k)!.data as Float32Array)).toEqual(values);
  });

  it('writes .npy headers padded to 64 bytes, v1.0, C order', () => {
    const h = npyHeaderBytes('f4', [7, 3]);
    expect(h.length % 64).toBe(0);
    const text = Buffer.from(h.subarray(10)).toString('latin1');
    expect(text).toContain("'descr': '<f4'");
    expect(text).toContain("'fortran_order': False");
    expect(text).toContain("'shape': (7, 3)");
  });

  it.skipIf(!hasNumpy())('interoperates with numpy both ways (savez, savez_compressed, zip64)', async () => {
    const dir = tempDir();
    const ours = path.join(dir, 'ours.npz');
    await writeNpz(ours, { w: { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) } }, { compress: true, forceZip64: true });
    const out = execFileSync('python3', ['-c', `import numpy as np; z=np.load(${JSON.stringify(ours)}); print(z['w'].dtype, z['w'].shape, z['w'].sum())`]).toString().trim();
    expect(out).toBe('float32 (2, 3) 21.0');
    const theirs = path.join(dir, 'theirs.npz');
    const big = path.join(dir, 'big.npz');
    execFileSync('python3', [
      '-c',
      `import numpy as np, zipfile
np.savez_compressed(${JSON.stringify(theirs)}, x=np.arange(12, dtype='<f8').reshape(3,4), ft=np.asfortranarray(np.arange(24, dtype='<f4').reshape(2,3,4)), f2=np.asfortranarray(np.arange(6, dtype='<i4').reshape(2,3)), h=np.array([0.5, -2], dtype='<f2'), b=np.array([True, False]))
with zipfile.ZipFile(${JSON.stringify(big)}, 'w', zipfile.ZIP_STORED) as zf:
    with zf.open('y.npy', 'w', force_zip64=True) as f:
        np.lib.format.write_array(f, np.arange(6, dtype='<f4'))`,
    ]);
    const t = await readNpz(theirs);
    expect(t.get('x')!.shape).toEqual([3, 4]);
    expect(Array.from(t.get('x')!.data as Float64Array)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // Fortran-order arrays come back in C order with the same logical values.
    expect(t.get('ft')!.shape).toEqual([2, 3, 4]);
    expect(Array.from(t.get('ft')!.data as Float32Array)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(Array.from(t.get('f2')!.data as Int32Array)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(t.get('h')!.data as Float32Array)).toEqual([0.5, -2]);
    expect(Array.from(t.get('b')!.data as Uint8Array)).toEqual([1, 0]);
    const y = await readNpz(big);
    expect(Array.from(y.get('y')!.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('npz bad input', () => {
  it('rejects a file that is not a zip, naming the file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'nope.npz');
    fs.writeFileSync(file, 'this is plain text, definitely not a zip archive at all');
    const err = await expectInputError(openNpz(file), /nope\.npz.*zip/);
    expect(err.details.file).toBe(file);
  });

  it('names a missing entry and lists what is there', async () => {
    const npz = await openNpz(saeNpz);
    try {
      const err = await expectInputError(npz.read('log_threshold'), /log_threshold\.npy.*W_enc/);
      expect(err.details.tensor).toBe('log_threshold');
    } finally {
      await npz.close();
    }
  });

  it('reports a truncated file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'cut.npz');
    const bytes = fs.readFileSync(saeNpz);
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectInputError(openNpz(file), /truncated/);
  });

  it('reports an array whose data is shorter than its header promises', () => {
    const header = npyHeaderBytes('f4', [200]);
    const npy = new Uint8Array(header.length + 400);
    npy.set(header, 0);
    expect(() => decodeNpy(npy, { file: 'w.npz', tensor: 'a' })).toThrow(/tensor "a".*800 data bytes.*truncated/);
  });

  it('detects a corrupted entry by its CRC', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.npz');
    await writeNpz(file, { a: { shape: [16], data: new Float32Array(16).fill(3) } });
    const bytes = fs.readFileSync(file);
    bytes[30 + 'a.npy'.length + 64 + 5] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const npz = await openNpz(file);
    try {
      await expectInputError(npz.read('a'), /tensor "a".*CRC/);
    } finally {
      await npz.close();
    }
  });

  it('refuses a non-float array where floats are needed, naming the tensor and dtype', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'int.npz');
    await writeNpz(file, { threshold: { shape: [2], data: Int32Array.from([1, 2]) } });
    const npz = await openNpz(file);
    try {
      const err = await expectInputError(npz.readF32('threshold'), /tensor "threshold".*floating-point.*i4/);
      expect(err.details.got).toBe('i4');
    } finally {
      await npz.close();
    }
  });

  it('refuses big-endian arrays', () => {
    const mk = (dict: string) => {
      const h = npyHeaderBytes('f4', [1]);
      const b = Buffer.from(h);
      const body = Buffer.from(dict.padEnd(h.length - 11) + '\n', 'latin1');
      body.copy(b, 10);
      return new Uint8Array(Buffer.concat([b, Buffer.alloc(4)]));
    };
    const where = { file: 'x.npz', tensor: 't' };
    expect(() => decodeNpy(mk("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }"), where)).toThrow(/little-endian/);
  });
});
