import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Native modules (onnxruntime-node, better-sqlite3) are safest in forked processes.
    pool: 'forks',
    reporters: ['default', './tests/summary-reporter.ts'],
  },
});
