import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { repoRoot, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-cli-');
function cli(args: string[]) {
  const r = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('SparseRM CLI: help and bad input', () => {
  it('documents every option in --help', () => {
    const expected: Record<string, string[]> = {
      latents: ['--checkpoint', '--layer', '--sae', '--ids', '--text', '--top', '--json', '--demo'],
      train: ['--data', '--dataset', '--checkpoint', '--layer', '--sae', '--k', '--loss', '--pooling', '--seed', '--out', '--json', '--demo'],
      score: ['--model', '--data', '--dataset', '--explain', '--json'],
      eval: ['--model', '--data', '--dataset', '--no-baselines', '--json'],
    };
    for (const [cmd, flags] of Object.entries(expected)) {
      const r = cli([cmd, '--help']);
      expect(r.status).toBe(0);
      for (const f of flags) expect(r.stdout).toContain(f);
    }
  });

  it('exits 2 with a message naming the problem', () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, '{"prompt":"p","chosen":"a","rejected":"b"}\n{"prompt":"p","chosen":"a"}\n');
    const good = path.join(dir, 'good.jsonl');
    fs.writeFileSync(good, '{"prompt":"p","chosen":"a","rejected":"b"}\n');
    const cases: Array<[string[], RegExp]> = [
      [['train', '--checkpoint', '/nowhere', '--sae', '/nowhere', '--data', bad], /--layer/],
      [['train', '--checkpoint', '/nowhere', '--layer', 'x', '--sae', '/s', '--data', bad], /--layer.*block index/],
      [['score', '--model', dir, '--data', good], /manifest\.json/],
      [['latents', '--checkpoint', '/nowhere', '--layer', '1', '--sae', '/s'], /exactly one of --ids or --text/],
      [['latents', '--checkpoint', '/nowhere', '--layer', '1', '--sae', path.join(dir, 'missing.npz'), '--ids', '2,3'], /missing\.npz|nowhere/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: /m);
      expect(r.stderr).toMatch(re);
      expect(r.stdout).toBe('');
    }
  });

  it('names the JSONL line of a bad pair', () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, '{"prompt":"p","chosen":"a","rejected":"b"}\n{"prompt":"p","chosen":"a"}\n');
    const r = cli(['eval', '--model', dir, '--data', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.jsonl, line 2, field "rejected"/);
  });
});
