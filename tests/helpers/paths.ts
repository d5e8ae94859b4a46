import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';

/** Repository root (tests/helpers → ../..). */
export const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
/** ../shared beside the checkout: read-only fixtures and datasets. */
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const fixturesDir = path.join(sharedDir, 'fixtures');
export const dataDir = path.join(sharedDir, 'data');

/** A fresh temporary directory, removed by the OS eventually; tests clean up what they can. */
export function tempDir(prefix = 'sparserm-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
