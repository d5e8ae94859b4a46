import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';

import { openStore } from '../../../main/engine/store';
import { dataDir, repoRoot, tempDir } from '../../helpers/paths';
import { runCli } from '../../helpers/cli';
import { seedRun } from '../store/helpers';

const run = runCli;

afterEach(() => {
  process.exitCode = 0;
});

describe('sparserm CLI (curation store commands)', () => {
  it('import → datasets → filter → decide (single, file, bulk, undo, redo) → export, all with --json and --db', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'db.sqlite');
    const src = path.join(dataDir, 'truthfulqa/pairs.jsonl');
    const imp = await run('import', src, '--dataset', 'tqa', '--json', '--db', db);
    expect(imp.code).toBe(0);
    expect(JSON.parse(imp.out)).toMatchObject({ dataset: 'tqa', imported: 790, duplicates: 0, skipped: [] });

    const ds = await run('datasets', '--json', '--db', db);
    const list = JSON.parse(ds.out);
    expect(list).toEqual([expect.objectContaining({ name: 'tqa', pairs: 790, undecided: 790, keep: 0, drop: 0 })]);

    // no scoring run yet → a clear error
    const noRun = await run('filter', '--dataset', 'tqa', '--db', db);
    expect(noRun.code).toBe(2);
    expect(noRun.err).toMatch(/error: .*finished scoring run of "tqa"/);

    const s = openStore(db);
    seedRun(s, list[0].id);
    s.close();
    const f = await run('filter', '--dataset', 'tqa', '--threshold', '0.05', '--band', '0.1', '--json', '--db', db);
    expect(f.code).toBe(0);
    const fj = JSON.parse(f.out);
    expect(fj.filter).toMatchObject({ rule: 'margin', threshold: 0.05, band: 0.1 });
    expect(fj.verdicts.keep + fj.verdicts.drop + fj.verdicts.uncertain).toBe(790);

    const one = await run('decide', '--pair', '1', '--action', 'swap', '--note', 'reversed', '--actor', 'ann', '--json', '--db', db);
    expect(JSON.parse(one.out)).toMatchObject({ changed: 1, pair: { id: 1, humanDecision: 'swap', note: 'reversed', effective: 'swap' } });

    fs.writeFileSync(path.join(dir, 'd.jsonl'), [{ pair: 2, action: 'keep' }, { pair: '3', action: 'drop', note: 'false' }].map((x) => JSON.stringify(x)).join('\n'));
    const file = await run('decide', '--file', path.join(dir, 'd.jsonl'), '--dataset', 'tqa', '--json', '--db', db);
    expect(JSON.parse(file.out)).toMatchObject({ lines: 2, changed: 2 });
    fs.writeFileSync(path.join(dir, 'bad.jsonl'), JSON.stringify({ pair: 4, action: 'keep' }) + '\n' + JSON.stringify({ pair: 5, action: 'maybe' }) + '\n');
    const bad = await run('decide', '--file', path.join(dir, 'bad.jsonl'), '--db', db);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/bad\.jsonl, line 2, field "action"/);

    const noYes = await run('decide', '--dataset', 'tqa', '--effective', 'uncertain', '--action', 'keep', '--db', db);
    expect(noYes.code).toBe(2);
    expect(noYes.err).toMatch(/--yes to apply "keep" to all \d+ matching pairs/);
    const bulk = await run('decide', '--dataset', 'tqa', '--effective', 'uncertain', '--action', 'keep', '--yes', '--json', '--db', db);
    const bj = JSON.parse(bulk.out);
    expect(bj.changed).toBe(bj.matched);
    const after = JSON.parse((await run('datasets', '--json', '--db', db)).out)[0];
    expect(after.uncertain).toBe(0);
    const undo = await run('decide', '--dataset', 'tqa', '--undo', '--json', '--db', db);
    expect(JSON.parse(undo.out)).toMatchObject({ undone: bj.group.id, canRedo: true });
    expect(JSON.parse((await run('datasets', '--json', '--db', db)).out)[0].uncertain).toBe(bj.matched - 0);
    const redo = await run('decide', '--dataset', 'tqa', '--redo', '--json', '--db', db);
    expect(JSON.parse(redo.out).changed).toBe(bj.matched);

    const out = path.join(dir, 'curated.jsonl');
    const ex = await run('export', '--dataset', 'tqa', '--out', out, '--dropped', path.join(dir, 'dropped.jsonl'), '--json', '--db', db);
    expect(ex.code).toBe(0);
    const ej = JSON.parse(ex.out);
    const final = JSON.parse((await run('datasets', '--json', '--db', db)).out)[0];
    expect(ej.counts.exported).toBe(final.keep + final.swap);
    expect(fs.readFileSync(out, 'utf8').trimEnd().split('\n')).toHaveLength(final.keep + final.swap);
    expect(JSON.parse(fs.readFileSync(out + '.provenance.json', 'utf8')).counts.swapped).toBe(1);

    const show = JSON.parse((await run('datasets', '--show', 'tqa', '--json', '--db', db)).out);
    expect(show.imports[0]).toMatchObject({ file: src, imported: 790 });
    expect(show.agreement.compared).toBeGreaterThan(0);
  });

  it('errors go to stderr with a non-zero exit; --help works', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'db.sqlite');
    const help = await run('import', '--help');
    expect(help.out).toMatch(/--strict/);
    expect(help.out).toMatch(/--format <format>/);
    const folder = await run('import', dir, '--dataset', 'x', '--db', db);
    expect(folder.code).toBe(2);
    expect(folder.err).toContain(`error: ${dir}: expected a file`);
    const fmt = await run('import', path.join(dataDir, 'truthfulqa/pairs.jsonl'), '--dataset', 'x', '--format', 'csv', '--db', db);
    expect(fmt.code).toBe(2);
    expect(fmt.err).toMatch(/--format/);
    const noDs = await run('export', '--dataset', 'nope', '--out', path.join(dir, 'o.jsonl'), '--db', db);
    expect(noDs.code).toBe(2);
    expect(noDs.err).toMatch(/dataset.*"nope"/);
    const del = await run('datasets', '--delete', 'nope', '--db', db);
    expect(del.code).toBe(2);
  });

  it('labels import / show / list', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'db.sqlite');
    fs.writeFileSync(path.join(dir, 'np.json'), JSON.stringify([{ modelId: 'gemma-2-9b-it', layer: '31-gemmascope-res-16k', index: '4128', description: 'wrong, untrue remarks' }]));
    const imp = await run('labels', 'import', path.join(dir, 'np.json'), '--json', '--db', db);
    expect(JSON.parse(imp.out)).toMatchObject({ imported: 1 });
    const show = await run('labels', 'show', '--model', 'gemma-2-9b-it', '--sae', '31-gemmascope-res-16k', '--latents', '4128,7', '--json', '--db', db);
    expect(JSON.parse(show.out)).toEqual([
      { latent: 4128, labels: [expect.objectContaining({ description: 'wrong, untrue remarks' })] },
      { latent: 7, labels: [] },
    ]);
    expect(JSON.parse((await run('labels', 'list', '--json', '--db', db)).out)).toEqual([{ modelId: 'gemma-2-9b-it', saeId: '31-gemmascope-res-16k', latents: 1, labels: 1 }]);
  });

  it('the real binary exits non-zero with the message on stderr and keeps stdout clean (random bytes)', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'rand.bin'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/sparserm.mjs'), 'import', path.join(dir, 'rand.bin'), '--dataset', 'x', '--json', '--db', path.join(dir, 'db.sqlite')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`error: ${path.join(dir, 'rand.bin')}: expected a text file`);
  });
});
