import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot, tempDir } from '../../helpers/paths';

/** Runs the real CLI in a child process, as a user would, with everything per-user in a temp SPARSERM_HOME. */
function sparserm(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 600_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('sparserm demo (end to end, real CLI)', () => {
  it('runs the main job on the demo kit; the last stdout line is the exported TRL file', () => {
    const home = tempDir('sparserm-demo-e2e-');
    const run = sparserm(['demo'], { SPARSERM_HOME: home });
    expect(run.stderr).not.toMatch(/^error:/m);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const out = lines[lines.length - 1];
    expect(path.isAbsolute(out)).toBe(true);
    expect(out.startsWith(home)).toBe(true);
    expect(fs.existsSync(out)).toBe(true);

    // TRL standard format with an explicit prompt: only the kept pairs, each a demo TruthfulQA pair.
    const rows = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const source = new Map(
      fs
        .readFileSync(path.join(repoRoot, 'resources/demo/truthfulqa/pairs.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .map((p) => [p.prompt, p]),
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(790); // the rule dropped something
    for (const r of rows) {
      expect(typeof r.prompt).toBe('string');
      const src = source.get(r.prompt);
      expect(src, r.prompt).toBeDefined();
      expect(new Set([r.chosen, r.rejected])).toEqual(new Set([src.chosen, src.rejected]));
    }

    // Provenance sidecar: source dataset, reward model, rule, counts that add up.
    const prov = JSON.parse(fs.readFileSync(out + '.provenance.json', 'utf8'));
    expect(JSON.stringify(prov)).toContain('demo-truthfulqa');
    expect(prov.counts.exported).toBe(rows.length);
    expect(prov.counts.total).toBe(790);

    // Human summary on stderr: the demo label, held-out accuracy, kept/dropped counts, where things are.
    expect(run.stderr).toContain('demo (random weights)');
    expect(run.stderr).toMatch(/held-out accuracy [\d.]+%/);
    expect(run.stderr).toMatch(/kept \d+, dropped \d+/);

    // Idempotent: a second run reuses the dataset (no duplicate pairs) and exports the same number of pairs.
    const again = sparserm(['demo', '--json'], { SPARSERM_HOME: home });
    expect(again.code).toBe(0);
    const doc = JSON.parse(again.stdout.trim().split('\n').pop()!);
    expect(doc.label).toBe('demo (random weights)');
    expect(doc.dataset).toMatchObject({ name: 'demo-truthfulqa', pairs: 790, action: 'reused' });
    expect(doc.output).toBe(out);
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(rows.length);
  }, 600_000);
});
