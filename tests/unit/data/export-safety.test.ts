/**
 * Export never destroys data (issue 9 rows 1, 5, 7): it refuses the database and its journal files as outputs, the
 * same file twice, and existing files unless asked; replacing keeps the mode; temp files of killed exports go away.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';

import { exportDataset, importFile, OutputExistsError, removeStaleTempFiles } from '../../../main/engine/data';
import { STALE_TEMP_AGE_MS } from '../../../main/engine/data/atomic';
import { InputError } from '../../../main/engine/errors';
import { openStore } from '../../../main/engine/store';
import { dataDir, tempDir } from '../../helpers/paths';
import { runCli } from '../../helpers/cli';

const run = runCli;

afterEach(() => {
  process.exitCode = 0;
});

async function setup() {
  const dir = tempDir();
  const db = path.join(dir, 'X.db');
  const s = openStore(db);
  await importFile(s, path.join(dataDir, 'halueval-qa/pairs.jsonl'), { dataset: 'D' });
  return { dir, db, s };
}

async function refusal(p: Promise<unknown>): Promise<InputError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

describe('export output paths', () => {
  it('refuses the database, its -wal/-shm/-journal files, and links to them; the store keeps working', async () => {
    const { dir, db, s } = await setup();
    const dbBytes = fs.statSync(db).size;
    fs.symlinkSync(db, path.join(dir, 'link.jsonl'));
    fs.linkSync(db, path.join(dir, 'hard.jsonl'));
    for (const out of [db, db + '-wal', db + '-shm', db + '-journal', path.join(dir, 'link.jsonl'), path.join(dir, 'hard.jsonl'), path.join(dir, 'sub', '..', 'X.db')]) {
      if (out.includes('sub')) fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
      for (const overwrite of [false, true]) {
        const err = await refusal(exportDataset(s, { dataset: 'D', out, includeUndecided: true, overwrite }));
        expect(err.message).toMatch(/field "--out": expected an output file that is not the database .*got the database/);
      }
    }
    // the dropped file and the provenance sidecar are checked too
    const viaDropped = await refusal(exportDataset(s, { dataset: 'D', out: path.join(dir, 'ok.jsonl'), dropped: db + '-wal', overwrite: true }));
    expect(viaDropped.message).toMatch(/field "--dropped".*got the database's -wal file/);
    // a database whose name is another output's sidecar: `--out y.jsonl` would write y.jsonl.provenance.json over it
    const db2 = path.join(dir, 'y.jsonl.provenance.json');
    const s2 = openStore(db2);
    await importFile(s2, path.join(dataDir, 'halueval-qa/pairs.jsonl'), { dataset: 'D' });
    const viaSidecar = await refusal(exportDataset(s2, { dataset: 'D', out: path.join(dir, 'y.jsonl'), overwrite: true }));
    expect(viaSidecar.message).toMatch(/field "the provenance sidecar of --out": expected an output file that is not the database/);
    s2.close();
    expect(fs.statSync(db).size).toBeGreaterThanOrEqual(dbBytes);
    expect(s.datasets.list().map((d) => d.name)).toEqual(['D']);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-') || f.startsWith('ok.jsonl'))).toEqual([]);
    s.close();
    const again = openStore(db);
    expect(again.pairs.count({ datasetId: again.datasets.byName('D')!.id })).toBe(987);
    again.close();
  });

  it('refuses the same file twice: --dropped = --out, --dropped = the provenance sidecar, or a link to either', async () => {
    const { dir, s } = await setup();
    const out = path.join(dir, 'c.jsonl');
    const e1 = await refusal(exportDataset(s, { dataset: 'D', out, dropped: out + '.provenance.json' }));
    expect(e1.message).toMatch(/field "--dropped": expected a different file than the provenance sidecar of --out .*got the same file twice/);
    const e2 = await refusal(exportDataset(s, { dataset: 'D', out, dropped: path.join(dir, '.', 'c.jsonl') }));
    expect(e2.message).toMatch(/field "--dropped": expected a different file than --out/);
    fs.writeFileSync(path.join(dir, 'real.jsonl'), 'keep me\n');
    fs.symlinkSync(path.join(dir, 'real.jsonl'), path.join(dir, 'alias.jsonl'));
    const e3 = await refusal(exportDataset(s, { dataset: 'D', out: path.join(dir, 'real.jsonl'), dropped: path.join(dir, 'alias.jsonl'), overwrite: true }));
    expect(e3.message).toMatch(/the same file twice/);
    expect(fs.readFileSync(path.join(dir, 'real.jsonl'), 'utf8')).toBe('keep me\n');
    expect(fs.existsSync(out)).toBe(false);
    s.close();
  });

  it('never replaces an existing file unless asked; when asked, keeps its mode', async () => {
    const { dir, s } = await setup();
    const out = path.join(dir, 'c.jsonl');
    fs.writeFileSync(out, 'previous\n');
    fs.chmodSync(out, 0o600);
    const err = await refusal(exportDataset(s, { dataset: 'D', out, includeUndecided: true }));
    expect(err).toBeInstanceOf(OutputExistsError);
    expect(err.message).toBe(`${out}: expected a new output file (pass --force to replace it, or choose another name), got an existing file`);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous\n');
    // the sidecar counts as an output too
    fs.writeFileSync(path.join(dir, 'd.jsonl.provenance.json'), '{}');
    const side = await refusal(exportDataset(s, { dataset: 'D', out: path.join(dir, 'd.jsonl') }));
    expect((side as OutputExistsError).paths).toEqual([path.join(dir, 'd.jsonl.provenance.json')]);
    expect(fs.existsSync(path.join(dir, 'd.jsonl'))).toBe(false);

    const r = await exportDataset(s, { dataset: 'D', out, includeUndecided: true, overwrite: true });
    expect(r.counts.exported).toBe(987);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(out, 'utf8').split('\n')).toHaveLength(988);
    fs.chmodSync(r.provenance, 0o640);
    await exportDataset(s, { dataset: 'D', out, overwrite: true });
    expect(fs.statSync(r.provenance).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(out, 'utf8')).toBe('');
    s.close();
  });

  it('removes temp files of killed exports (writer process gone, or untouched for a week) and leaves live ones', async () => {
    const { dir, s } = await setup();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const names = {
      dead: `.out.jsonl.tmp-${dead}-0a1b2c3d`,
      deadSidecar: `.out.jsonl.provenance.json.tmp-${dead}-deadbeef`,
      liveSelf: `.out.jsonl.tmp-${process.pid}-12345678`,
      liveOld: `.out.jsonl.tmp-${process.ppid}-87654321`,
      notOurs: `.out.jsonl.tmp-${dead}-zz`,
      visible: `out.jsonl.tmp-${dead}-0a1b2c3d`,
    };
    for (const n of Object.values(names)) fs.writeFileSync(path.join(dir, n), 'x'.repeat(1000));
    const weekAgo = (Date.now() - STALE_TEMP_AGE_MS - 60_000) / 1000;
    fs.utimesSync(path.join(dir, names.liveOld), weekAgo, weekAgo);
    await exportDataset(s, { dataset: 'D', out: path.join(dir, 'out.jsonl'), includeUndecided: true });
    const left = fs.readdirSync(dir);
    expect(left).not.toContain(names.dead);
    expect(left).not.toContain(names.deadSidecar);
    expect(left).not.toContain(names.liveOld);
    expect(left).toContain(names.liveSelf);
    expect(left).toContain(names.notOurs);
    expect(left).toContain(names.visible);
    expect(removeStaleTempFiles(dir)).toEqual([]);
    s.close();
  });

  it('CLI: `export --db X.db --out X.db` exits 2 and the database still works; --force replaces an existing file', async () => {
    const { dir, db, s } = await setup();
    s.close();
    const bad = await run('export', '--db', db, '--dataset', 'D', '--out', db, '--include-undecided');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/error: .*X\.db, field "--out": expected an output file that is not the database/);
    expect(bad.out).toBe('');
    const list = await run('datasets', '--db', db, '--json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out)[0]).toMatchObject({ name: 'D', pairs: 987 });
    const twice = await run('export', '--db', db, '--dataset', 'D', '--out', path.join(dir, 'c.jsonl'), '--dropped', path.join(dir, 'c.jsonl.provenance.json'));
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/the same file twice/);
    const out = path.join(dir, 'c.jsonl');
    fs.writeFileSync(out, 'old\n');
    const exists = await run('export', '--db', db, '--dataset', 'D', '--out', out, '--include-undecided');
    expect(exists.code).toBe(2);
    expect(exists.err).toMatch(/pass --force to replace it/);
    expect(fs.readFileSync(out, 'utf8')).toBe('old\n');
    const forced = await run('export', '--db', db, '--dataset', 'D', '--out', out, '--include-undecided', '--force', '--json');
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.out).counts.exported).toBe(987);
  });
});
