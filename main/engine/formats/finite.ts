/**
 * Non-finite weights (NaN, ±Inf) make every activation downstream NaN without an error; readers check the tensors
 * they return with one cheap pass (`x - x` is 0 for every finite float and NaN otherwise).
 */
import { InputError } from '../errors';

/** Index of the first NaN or ±Inf value, or -1 when all are finite. */
export function firstNonFinite(data: Float32Array | Float64Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x - x !== 0) return i;
  }
  return -1;
}

/** Throws an InputError naming the file, tensor and first bad index when `data` holds a NaN or ±Inf. */
export function assertFinite(data: Float32Array | Float64Array, where: { file: string; tensor: string }, describe?: (index: number) => string): void {
  const i = firstNonFinite(data);
  if (i >= 0) {
    throw new InputError({ ...where, expected: 'finite weights (no NaN or Inf)', got: `${data[i]} at ${describe ? describe(i) : `index ${i}`}` });
  }
}
