/**
 * `sparserm serve` runs on another machine than the browser (often a GPU box behind an SSH tunnel), so a relative
 * path would land in the server's working folder, which the curator never sees. Path fields must be absolute.
 */
import path from 'node:path';
import { InputError } from '../engine/errors';

/** Operation → its input fields that name a file on the server. */
export const SERVER_PATH_FIELDS: Record<string, readonly string[]> = {
  importDataset: ['path'],
  exportDataset: ['path', 'droppedPath'],
  addCheckpoint: ['path'],
  addSae: ['path'],
  importLabels: ['path'],
};

/** Throws an InputError naming the first relative path field of `input`, if any. */
export function requireAbsolutePaths(op: string, input: unknown): void {
  const fields = SERVER_PATH_FIELDS[op];
  if (!fields || typeof input !== 'object' || input === null) return;
  for (const field of fields) {
    const v = (input as Record<string, unknown>)[field];
    if (typeof v === 'string' && v.trim() !== '' && !path.isAbsolute(v.trim())) {
      throw new InputError({
        field,
        expected: 'an absolute path on the machine running sparserm serve (e.g. /data/pairs.jsonl); a relative path would resolve in the server\'s working folder',
        got: JSON.stringify(v),
      });
    }
  }
}
