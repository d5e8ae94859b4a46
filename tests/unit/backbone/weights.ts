import fs from 'node:fs';
import path from 'node:path';

import { openSafetensors } from '../../../main/engine/formats/safetensors';

/** A weight reader over a checkpoint folder's safetensors (single or sharded), for the test references. */
export function weightsOf(dir: string): { read: (name: string) => Float32Array; close: () => void } {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).map((f) => openSafetensors(path.join(dir, f)));
  return {
    read: (name) => {
      const f = files.find((s) => s.entries.has(name));
      if (!f) throw new Error(`no ${name}`);
      return f.readF32(name);
    },
    close: () => files.forEach((f) => f.close()),
  };
}

/** Largest |engine − reference| over a [T × H] output, and the largest |reference| (the scale of the tolerance). */
export function maxAbsDiff(a: Float32Array, ref: Float64Array[]): { err: number; scale: number } {
  const H = ref[0].length;
  let err = 0;
  let scale = 0;
  ref.forEach((row, t) =>
    row.forEach((v, d) => {
      err = Math.max(err, Math.abs(a[t * H + d] - v));
      scale = Math.max(scale, Math.abs(v));
    }),
  );
  return { err, scale };
}
