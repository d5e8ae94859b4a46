import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { exportDataset, importFile } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { dataDir, tempDir } from '../../helpers/paths';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Expected counts derived from the file itself: rows that are valid TRL-standard objects, and distinct triples. */
function expectedFromFile(file: string) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const seen = new Set<string>();
  let valid = 0;
  for (const l of lines) {
    const o = JSON.parse(l);
    if (typeof o.prompt !== 'string' || typeof o.chosen !== 'string' || typeof o.rejected !== 'string') continue;
    valid++;
    seen.add(JSON.stringify([o.prompt, o.chosen, o.rejected]));
  }
  return { rows: lines.length, valid, unique: seen.size };
}

const NORMALIZED = [
  'truthfulqa/pairs.jsonl',
  'truthfulqa/pairs_all.jsonl',
  'hh-rlhf-harmless-base-test/pairs.jsonl',
  'halueval-qa/pairs.jsonl',
  'pku-saferlhf-sample/pairs.jsonl',
  'pku-saferlhf-sample/pairs_safety_contrast.jsonl',
];

describe('importing the real datasets bundled in tests/fixtures/data', () => {
  for (const rel of NORMALIZED) {
    it(`${rel}: every row, right counts, matches PROVENANCE.json, source file untouched`, async () => {
      const file = path.join(dataDir, rel);
      const before = sha(file);
      const prov = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'PROVENANCE.json'), 'utf8'));
      const exp = expectedFromFile(file);
      expect(exp.rows).toBe(prov.normalized[path.basename(rel)].rows);
      const s = openStore(path.join(tempDir(), 'db.sqlite'));
      const r = await importFile(s, file, { dataset: rel });
      expect(r.format).toBe('standard');
      expect(r.imported).toBe(exp.unique);
      expect(r.duplicates).toBe(exp.valid - exp.unique);
      expect(r.skippedTotal).toBe(exp.rows - exp.valid);
      expect(r.sha256).toBe(prov.normalized[path.basename(rel)].sha256);
      expect(s.pairs.count({ datasetId: r.datasetId })).toBe(exp.unique);
      // audit trail: line numbers, external ids, raw row kept
      const first = s.pairs.list({ datasetId: r.datasetId, limit: 1 }).items[0]!;
      const firstRow = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]!);
      expect(first).toMatchObject({ line: 1, externalId: firstRow.id, source: firstRow.source, prompt: firstRow.prompt, chosen: firstRow.chosen, rejected: firstRow.rejected });
      expect(JSON.parse(first.raw!)).toEqual(firstRow);
      expect(sha(file)).toBe(before);
      s.close();
    });
  }

  it('HH: 4 rows with an empty chosen are imported as they are', async () => {
    const s = openStore(':memory:');
    const r = await importFile(s, path.join(dataDir, 'hh-rlhf-harmless-base-test/pairs.jsonl'), { dataset: 'hh' });
    expect(s.db.prepare("SELECT count(*) FROM pairs WHERE dataset_id = ? AND chosen = ''").pluck().get(r.datasetId)).toBe(4);
  });

  it('raw Anthropic HH dialogues give the same pairs as the normalized file (prompt = shared prefix up to the last Assistant turn)', async () => {
    const s = openStore(':memory:');
    const raw = await importFile(s, path.join(dataDir, 'raw-samples/hh-rlhf-harmless-test.first100.jsonl'), { dataset: 'raw' });
    expect(raw.format).toBe('hh');
    const rawRows = fs.readFileSync(path.join(dataDir, 'raw-samples/hh-rlhf-harmless-test.first100.jsonl'), 'utf8').split('\n').filter(Boolean);
    expect(raw.imported + raw.duplicates).toBe(rawRows.length);
    const norm = fs.readFileSync(path.join(dataDir, 'hh-rlhf-harmless-base-test/pairs.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, rawRows.length).map((l) => JSON.parse(l));
    const got = s.pairs.list({ datasetId: raw.datasetId, limit: 100 }).items;
    for (let i = 0; i < got.length; i++) {
      const n = norm[got[i]!.line! - 1];
      expect({ prompt: got[i]!.prompt, chosen: got[i]!.chosen, rejected: got[i]!.rejected }).toEqual({ prompt: n.prompt, chosen: n.chosen, rejected: n.rejected });
    }
  });

  it('raw PKU-SafeRLHF rows: chosen = the safer response by default, notes rows where neither/both are safe; better on request', async () => {
    const file = path.join(dataDir, 'raw-samples/pku-saferlhf.first8.jsonl');
    const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const s = openStore(':memory:');
    const r = await importFile(s, file, { dataset: 'pku' });
    expect(r.format).toBe('pku');
    expect(r.imported).toBe(rows.length);
    const norm = fs.readFileSync(path.join(dataDir, 'pku-saferlhf-sample/pairs.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const got = s.pairs.list({ datasetId: r.datasetId, limit: 100 }).items;
    got.forEach((p, i) => {
      expect(p.chosen).toBe(rows[i][`response_${rows[i].safer_response_id}`]);
      expect([p.prompt, p.chosen, p.rejected]).toEqual([norm[i].prompt, norm[i].chosen, norm[i].rejected]);
    });
    const sameSafety = rows.filter((x) => x.is_response_0_safe === x.is_response_1_safe).length;
    expect(r.notes).toHaveLength(sameSafety);
    expect(r.notes.every((n) => /both responses are marked safe|neither response/.test(n.note))).toBe(true);
    const better = await importFile(s, file, { dataset: 'pku-better', pkuPreference: 'better' });
    const gotB = s.pairs.list({ datasetId: better.datasetId, limit: 100 }).items;
    gotB.forEach((p, i) => expect(p.chosen).toBe(rows[i][`response_${rows[i].better_response_id}`]));
  });

  it('import → export → import gives the same pairs (standard and conversational)', async () => {
    const dir = tempDir();
    const s = openStore(path.join(dir, 'db.sqlite'));
    for (const rel of ['hh-rlhf-harmless-base-test/pairs.jsonl', 'truthfulqa/pairs.jsonl']) {
      const a = await importFile(s, path.join(dataDir, rel), { dataset: `a-${rel}` });
      s.decisions.decide({ datasetId: a.datasetId }, 'keep');
      for (const format of ['standard', 'conversational'] as const) {
        const out = path.join(dir, `${a.datasetId}-${format}.jsonl`);
        const e = await exportDataset(s, { dataset: a.datasetId, out, format });
        expect(e.counts.exported).toBe(a.imported);
        const b = await importFile(s, out, { dataset: `b-${rel}-${format}` });
        expect(b.format).toBe(format);
        expect(b.imported).toBe(a.imported);
        const h = (id: number) => s.db.prepare('SELECT content_hash FROM pairs WHERE dataset_id = ? ORDER BY id').pluck().all(id);
        expect(h(b.datasetId)).toEqual(h(a.datasetId));
      }
    }
    s.close();
  });
});
