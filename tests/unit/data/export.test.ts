import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { exportDataset, importFile } from '../../../main/engine/data';
import { InputError } from '../../../main/engine/errors';
import { openStore } from '../../../main/engine/store';
import { dataDir, tempDir } from '../../helpers/paths';
import { seedRun } from '../store/helpers';

async function curated() {
  const dir = tempDir();
  const s = openStore(path.join(dir, 'db.sqlite'));
  const src = path.join(dataDir, 'truthfulqa/pairs.jsonl');
  const imp = await importFile(s, src, { dataset: 'tqa' });
  const run = seedRun(s, imp.datasetId);
  s.runs.applyFilter({ datasetId: imp.datasetId, runId: run, rule: 'margin', threshold: 0, band: 0.15 });
  const ids = s.pairs.ids({ datasetId: imp.datasetId });
  const dropIds = s.pairs.ids({ datasetId: imp.datasetId, verdict: ['drop'] });
  const keepIds = s.pairs.ids({ datasetId: imp.datasetId, verdict: ['keep'] });
  s.decisions.decidePair(dropIds[0]!, 'swap'); // overridden, swapped
  s.decisions.decidePair(dropIds[1]!, 'keep'); // overridden
  s.decisions.decidePair(keepIds[0]!, 'drop', { note: 'hallucinated' }); // overridden
  return { dir, s, imp, ids, src, swapped: dropIds[0]!, rescued: dropIds[1]!, killed: keepIds[0]! };
}

describe('export', () => {
  it('TRL standard: exactly prompt/chosen/rejected, kept pairs only, swaps applied, id order, provenance sidecar', async () => {
    const { dir, s, imp, swapped, rescued, killed, src } = await curated();
    const out = path.join(dir, 'curated.jsonl');
    const r = await exportDataset(s, { dataset: 'tqa', out, dropped: path.join(dir, 'dropped.jsonl') });
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    const counts = s.datasets.countsByDecision(imp.datasetId);
    expect(lines).toHaveLength(counts.keep + counts.swap);
    for (const l of lines) expect(Object.keys(l)).toEqual(['prompt', 'chosen', 'rejected']);
    const kept = s.pairs.list({ datasetId: imp.datasetId, effective: ['keep', 'swap'], limit: 5000 }).items;
    expect(lines.map((l) => l.prompt)).toEqual(kept.map((p) => p.prompt));
    const sw = s.pairs.get(swapped);
    expect(lines[kept.findIndex((p) => p.id === swapped)]).toEqual({ prompt: sw.prompt, chosen: sw.rejected, rejected: sw.chosen });
    expect(kept.some((p) => p.id === rescued)).toBe(true);
    expect(kept.some((p) => p.id === killed)).toBe(false);
    // provenance
    const prov = JSON.parse(fs.readFileSync(out + '.provenance.json', 'utf8'));
    expect(prov.dataset.name).toBe('tqa');
    expect(prov.sources[0]).toMatchObject({ file: src, sha256: createHash('sha256').update(fs.readFileSync(src)).digest('hex'), imported: 790 });
    expect(prov.reward_model).toMatchObject({ id: 'rm-test', manifest_hash: 'hash-rm-test' });
    expect(prov.rule).toMatchObject({ name: 'margin', threshold: 0, band: 0.15 });
    expect(prov.counts).toMatchObject({ exported: lines.length, kept: counts.keep, swapped: 1, dropped: counts.drop, uncertain: counts.uncertain, overridden: 3, humanDecided: 3 });
    expect(prov.output.sha256).toBe(createHash('sha256').update(fs.readFileSync(out)).digest('hex'));
    expect(prov.tool.version).toMatch(/^\d+\.\d+\.\d+/);
    // dropped file for audit: every pair not exported, with its decision
    const dropped = fs.readFileSync(path.join(dir, 'dropped.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(dropped).toHaveLength(790 - lines.length);
    expect(dropped.find((d) => d.pair_id === killed)).toMatchObject({ decision: 'drop', human_decision: 'drop', auto_verdict: 'keep', note: 'hallucinated' });
    expect(r.counts.exported).toBe(lines.length);
    // no temp files left behind
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('conversational: prompt user turn, assistant responses; deterministic bytes across runs', async () => {
    const { dir, s, swapped } = await curated();
    const a = path.join(dir, 'a.jsonl');
    const b = path.join(dir, 'b.jsonl');
    await exportDataset(s, { dataset: 'tqa', out: a, format: 'conversational' });
    await exportDataset(s, { dataset: 'tqa', out: b, format: 'conversational' });
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
    const lines = fs.readFileSync(a, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['prompt', 'chosen', 'rejected']);
      expect(l.prompt).toEqual([{ role: 'user', content: expect.any(String) }]);
      expect(l.chosen).toEqual([{ role: 'assistant', content: expect.any(String) }]);
    }
    const sw = s.pairs.get(swapped);
    expect(lines.find((l) => l.prompt[0].content === sw.prompt && l.chosen[0].content === sw.rejected)).toBeDefined();
  });

  it('undecided pairs are left out unless asked for; a missing folder or a folder as --out is an InputError; the old file survives a failed export', async () => {
    const dir = tempDir();
    const s = openStore(path.join(dir, 'db.sqlite'));
    await importFile(s, path.join(dataDir, 'halueval-qa/pairs.jsonl'), { dataset: 'h' });
    const out = path.join(dir, 'h.jsonl');
    const none = await exportDataset(s, { dataset: 'h', out });
    expect(none.counts).toMatchObject({ exported: 0, undecided: 987 });
    expect(fs.readFileSync(out, 'utf8')).toBe('');
    const all = await exportDataset(s, { dataset: 'h', out, includeUndecided: true, overwrite: true });
    expect(all.counts.exported).toBe(987);
    const before = fs.readFileSync(out);
    await expect(exportDataset(s, { dataset: 'h', out: path.join(dir, 'missing', 'x.jsonl') })).rejects.toThrow(/existing folder/);
    await expect(exportDataset(s, { dataset: 'h', out: dir })).rejects.toThrow(InputError);
    await expect(exportDataset(s, { dataset: 'nope', out })).rejects.toThrow(/dataset/);
    const ac = new AbortController();
    ac.abort();
    await expect(exportDataset(s, { dataset: 'h', out, includeUndecided: true, overwrite: true, signal: ac.signal })).rejects.toThrow(/cancelled/);
    expect(fs.readFileSync(out).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
