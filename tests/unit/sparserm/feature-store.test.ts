import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { AppendStore, decodeSparse, encodeSparse } from '../../../main/engine/sparserm/feature-store';
import { tempDir } from '../../helpers/paths';

describe('AppendStore (feature cache storage)', () => {
  it('persists records and inline values across reopen', () => {
    const dir = tempDir();
    const a = AppendStore.open(dir);
    a.putMany([['k1', Uint8Array.of(1, 2, 3)], ['k2', Uint8Array.of(4)]]);
    a.putInline([['t1', 'k1']]);
    a.putMany([['k1', Uint8Array.of(9)]]); // existing keys are kept, not overwritten
    a.close();
    const b = AppendStore.open(dir);
    expect(Array.from(b.get('k1')!)).toEqual([1, 2, 3]);
    expect(Array.from(b.get('k2')!)).toEqual([4]);
    expect(b.getInline('t1')).toBe('k1');
    expect(b.get('t1')).toBeUndefined();
    expect(b.size).toBe(3);
    b.close();
  });

  it('ignores every kind of torn or dangling index line and keeps appending correctly after one', () => {
    const dir = tempDir();
    const a = AppendStore.open(dir);
    a.putMany([['good', Uint8Array.of(7, 7)]]);
    a.close();
    const shard = fs.readdirSync(dir).find((f) => f.endsWith('.bin'))!;
    const index = path.join(dir, 'index.tsv');
    fs.appendFileSync(index, `past-end\t${shard}\t0\t999\t.\n`); // names bytes that were never written
    fs.appendFileSync(index, `bad-shard\t../etc/passwd\t0\t1\t.\n`);
    fs.appendFileSync(index, `no-marker\t${shard}\t0\t1\n`);
    fs.appendFileSync(index, `torn\t${shard}\t0\t1`); // crash inside the line: no marker, no newline
    const b = AppendStore.open(dir);
    expect(b.size).toBe(1);
    b.putMany([['after', Uint8Array.of(5)]]);
    b.close();
    const c = AppendStore.open(dir);
    expect(Array.from(c.get('after')!)).toEqual([5]);
    expect(Array.from(c.get('good')!)).toEqual([7, 7]);
    expect(c.has('torn')).toBe(false);
    c.close();
  });

  it('encodes sparse latent rows losslessly', () => {
    const idx = Int32Array.from([3, 17, 16000]);
    const val = Float32Array.from([0.5, 2.25, 9.125]);
    const back = decodeSparse(encodeSparse(idx, val));
    expect(Array.from(back.idx)).toEqual(Array.from(idx));
    expect(Array.from(back.val)).toEqual(Array.from(val));
  });
});
