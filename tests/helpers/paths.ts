import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';

/** Repository root (tests/helpers → ../..). */
export const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
/** Golden fixtures and real data subsets, copied into the repo with their licences (tests/fixtures/README.md). */
export const fixturesDir = path.join(repoRoot, 'tests', 'fixtures');
export const dataDir = path.join(fixturesDir, 'data');

/** A fresh temporary directory, removed by the OS eventually; tests clean up what they can. */
export function tempDir(prefix = 'sparserm-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
