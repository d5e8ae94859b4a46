/**
 * AppendStore.readInto (the re-scoring hot path at hidden 2304): records copied into one buffer equal `get()`,
 * in any order, with repeats, across batches (shards read by file position or from a whole loaded shard), and
 * a missing key or a record of the wrong length is refused.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { AppendStore } from '../../../main/engine/sparserm/feature-store';
import { tempDir } from '../../helpers/paths';

const REC = 12;
const rec = (i: number) => Uint8Array.from({ length: REC }, (_, k) => (i * 31 + k * 7) & 0xff);

describe('AppendStore.readInto', () => {
  it('equals get() for every item, in any order, with repeats, from file reads and from a loaded shard', () => {
    const dir = path.join(tempDir('srm-readinto-'), 'z');
    const s = AppendStore.open(dir);
    s.putMany(Array.from({ length: 40 }, (_, i): [string, Uint8Array] => [`k${i}`, rec(i)]));
    s.putMany(Array.from({ length: 25 }, (_, i): [string, Uint8Array] => [`k${40 + i}`, rec(40 + i)]));
    const order = [5, 6, 7, 8, 64, 0, 1, 2, 3, 5, 39, 40, 41, 12, 12, 63];
    for (const fresh of [true, false]) {
      const st = fresh ? AppendStore.open(dir) : s;
      if (!fresh) st.get('k0'); // loads the whole shard: the in-memory path
      const dest = new Uint8Array(order.length * REC);
      st.readInto(order.map((i, j) => ({ key: `k${i}`, at: j * REC })), dest, REC);
      order.forEach((i, j) => expect([...dest.subarray(j * REC, (j + 1) * REC)]).toEqual([...st.get(`k${i}`)!]));
      if (fresh) st.close();
    }
    expect(() => s.readInto([{ key: 'nope', at: 0 }], new Uint8Array(REC), REC)).toThrow(/no record for nope/);
    expect(() => s.readInto([{ key: 'k1', at: 0 }], new Uint8Array(16), 16)).toThrow(/has 12 bytes, expected 16/);
    s.close();
  });
});
