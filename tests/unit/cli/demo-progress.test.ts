/**
 * Issue 10 item 12: the CLI says what happens. `sparserm demo` (a real child process on a temp home) reports each
 * phase once, names early stopping instead of halting at "train: 5/40", and a re-run that reuses everything says so
 * (no replayed "import 0/1"). The line printer itself is tested with a fake clock.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stageProgress } from '../../../main/cli/progress';
import { trainingOutcome } from '../../../main/engine/demo/run-demo';
import { repoRoot, tempDir } from '../../helpers/paths';

const demo = (home: string) => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'demo', '--ep', 'cpu'], { env: { ...process.env, SPARSERM_HOME: home, SPARSERM_DB: '' }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr.trim().split('\n');
};

describe('sparserm demo progress (stderr)', () => {
  it('reports each phase once, names early stopping, and says what a re-run reuses', { timeout: 120_000 }, () => {
    const home = tempDir('sparserm-cli-progress-');
    const first = demo(home);
    // No counters without meaning: every progress line before the summary is unique.
    const progressLines = first.slice(0, first.findIndex((l) => l.startsWith('demo (random weights)')));
    expect(new Set(progressLines).size).toBe(progressLines.length);
    expect(progressLines.filter((l) => /^import/.test(l))).toEqual(['import: imported dataset "demo-truthfulqa": 790 pairs']);
    expect(progressLines.some((l) => /(^|\s)0\/1\b/.test(l))).toBe(false);
    for (const stage of ['train › tokenizing', 'score › tokenizing', 'export › writing pairs']) {
      expect(progressLines.filter((l) => l.startsWith(stage + ':')), stage).toHaveLength(1);
    }
    const epochs = progressLines.filter((l) => /^train: epoch \d+ \(of at most 40\)/.test(l));
    expect(epochs.length).toBeGreaterThan(0);
    const outcome = progressLines.find((l) => /^train: (stopped early|ran all)/.test(l));
    expect(outcome).toBeDefined();
    // The demo head stops early (40 epochs max): the line says so, with the epoch whose weights were kept.
    if (epochs.length < 40) expect(outcome).toMatch(new RegExp(`^train: stopped early after epoch ${epochs.length} of at most 40: .*kept the weights of epoch \\d+$`));

    const again = demo(home);
    const againProgress = again.slice(0, again.findIndex((l) => l.startsWith('demo (random weights)')));
    expect(againProgress.slice(0, 4)).toEqual([
      expect.stringMatching(/^demo kit: reused /),
      'import: reused dataset "demo-truthfulqa" (790 pairs, already imported; decisions kept)',
      expect.stringMatching(/^train: reused reward model srm-\S+ \(trained on these exact pairs/),
      expect.stringMatching(/^score: reused scoring run \d+ \(every pair already scored/),
    ]);
    // Nothing recomputed: no tokenizing, backbone or epoch lines on the re-run.
    expect(againProgress.some((l) => / › (tokenizing|backbone|SAE)|: epoch \d/.test(l))).toBe(false);
    expect(again.some((l) => /^error:/.test(l))).toBe(false);
  });

  it('prints one "done" line per phase and interim lines only for slow phases', () => {
    const lines: string[] = [];
    let t = 0;
    const p = stageProgress((l) => lines.push(l), { now: () => t, intervalMs: 3000 });
    p({ stage: 'train', phase: 'tokenize', done: 0, total: 10 });
    p({ stage: 'train', phase: 'tokenize', done: 10, total: 10 });
    p({ stage: 'train', phase: 'tokenize', done: 10, total: 10 });
    p({ stage: 'train', phase: 'backbone', done: 1, total: 100 });
    t = 1000;
    p({ stage: 'train', phase: 'backbone', done: 20, total: 100 });
    t = 4000;
    p({ stage: 'train', phase: 'backbone', done: 60, total: 100, etaS: 2.2 });
    t = 6500;
    p({ stage: 'train', phase: 'backbone', done: 100, total: 100 });
    p({ stage: 'train', phase: 'train', done: 1, total: 40, stats: { epoch: 1, trainLoss: 0.5, trainAccuracy: 0.6, valLoss: 0.7, valAccuracy: 0.55 } });
    p({ stage: 'score', phase: 'tokenize', done: 10, total: 10 });
    p({ stage: 'train', phase: 'train', done: 1, total: 1, note: 'train: stopped early' });
    expect(lines).toEqual([
      'train › tokenizing: 10 done',
      'train › backbone forward passes: 60/100 (~3 s left)',
      'train › backbone forward passes: 100 done in 7 s',
      'train: epoch 1 (of at most 40): train loss 0.5000, held-out loss 0.7000, held-out accuracy 55.0%',
      'score › tokenizing: 10 done',
      'train: stopped early',
    ]);
  });

  it('words the training outcome', () => {
    expect(trainingOutcome({ epochsRun: 8, maxEpochs: 40, bestEpoch: 3, patience: 5 })).toBe('stopped early after epoch 8 of at most 40: the held-out loss had not improved for 5 epochs; kept the weights of epoch 3');
    expect(trainingOutcome({ epochsRun: 40, maxEpochs: 40, bestEpoch: 38, patience: 5 })).toMatch(/^ran all 40 epochs; kept the weights of epoch 38/);
  });
});
