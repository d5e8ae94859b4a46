import fs from 'node:fs';
import readline from 'node:readline';
import type { Command } from 'commander';
import { z } from 'zod';

import { InputError } from '../../engine/errors';
import { openStore, DecisionAction, EffectiveDecision, AutoVerdict, type PairFilter, type Store } from '../../engine/store';
import { action, printJson } from '../output';
import { zodIssueDetails } from '../../engine/zod-issue';

const LineSchema = z.object({
  pair: z.union([z.number().int().positive(), z.string().regex(/^\d+$/).transform(Number)]),
  action: DecisionAction,
  note: z.string().optional(),
  actor: z.string().optional(),
});

interface Opts {
  dataset?: string;
  pair?: string;
  action?: string;
  note?: string;
  actor?: string;
  file?: string;
  undo: boolean;
  redo: boolean;
  yes: boolean;
  effective?: string;
  verdict?: string;
  source?: string;
  marginMin?: string;
  marginMax?: string;
  text?: string;
  latent?: string;
  override?: boolean;
  db?: string;
  json: boolean;
}

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));
function num(v: string | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InputError({ field, expected: 'a number', got: `"${v}"` });
  return n;
}

function parseAction(a: string | undefined): DecisionAction {
  const r = DecisionAction.safeParse(a);
  if (!r.success) throw new InputError({ field: '--action', expected: 'keep | drop | swap | note | clear', got: a === undefined ? 'nothing' : `"${a}"` });
  return r.data;
}

function whereFilter(o: Opts, datasetId: number): PairFilter | null {
  const f: PairFilter = { datasetId };
  let any = false;
  if (o.effective !== undefined) {
    f.effective = list(o.effective)!.map((e) => {
      const r = EffectiveDecision.safeParse(e);
      if (!r.success) throw new InputError({ field: '--effective', expected: 'keep, drop, swap, uncertain or undecided (comma-separated)', got: `"${e}"` });
      return r.data;
    });
    any = true;
  }
  if (o.verdict !== undefined) {
    f.verdict = list(o.verdict)!.map((e) => {
      if (e === 'none') return 'none' as const;
      const r = AutoVerdict.safeParse(e);
      if (!r.success) throw new InputError({ field: '--verdict', expected: 'keep, drop, uncertain or none (comma-separated)', got: `"${e}"` });
      return r.data;
    });
    any = true;
  }
  if (o.source !== undefined) (f.source = list(o.source)), (any = true);
  if (o.marginMin !== undefined) (f.marginMin = num(o.marginMin, '--margin-min')), (any = true);
  if (o.marginMax !== undefined) (f.marginMax = num(o.marginMax, '--margin-max')), (any = true);
  if (o.text !== undefined) (f.text = o.text), (any = true);
  if (o.latent !== undefined) (f.latent = num(o.latent, '--latent')), (any = true);
  if (o.override !== undefined) (f.hasOverride = o.override), (any = true);
  return any ? f : null;
}

async function applyFile(store: Store, file: string, datasetId: number | undefined, defaults: { actor?: string }) {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new InputError({ file, expected: 'a JSONL file of {pair, action, note?, actor?}' });
  const rows: { line: number; v: z.output<typeof LineSchema> }[] = [];
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (!text.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new InputError({ file, line, expected: 'a JSON object', got: `broken JSON (${(e as Error).message})` });
    }
    const r = LineSchema.safeParse(obj);
    if (!r.success) {
      throw new InputError({ ...zodIssueDetails(r.error, obj, file), line });
    }
    if (r.data.action === 'note' && r.data.note === undefined) throw new InputError({ file, line, field: 'note', expected: 'a note for action "note"' });
    rows.push({ line, v: r.data });
  }
  if (rows.length === 0) throw new InputError({ file, expected: 'at least one decision line' });
  // Validate every pair first, then apply all lines in one transaction: the file is applied entirely or not at all.
  for (const { line: l, v } of rows) {
    let p;
    try {
      p = store.pairs.get(v.pair);
    } catch {
      throw new InputError({ file, line: l, field: 'pair', expected: 'an existing pair id', got: String(v.pair) });
    }
    if (datasetId !== undefined && p.datasetId !== datasetId) throw new InputError({ file, line: l, field: 'pair', expected: `a pair of the dataset given with --dataset`, got: `pair ${v.pair} of dataset ${p.datasetId}` });
  }
  let changed = 0;
  store.transaction(() => {
    for (const { v } of rows) changed += store.decisions.decidePair(v.pair, v.action, { note: v.note, actor: v.actor ?? defaults.actor }).changed;
  });
  return { lines: rows.length, changed };
}

export function register(program: Command): void {
  program
    .command('decide')
    .description('record curator decisions (keep / drop / swap / note / clear) on one pair, a file of decisions, or every pair matching a filter; undo / redo')
    .option('--dataset <name>', 'dataset (required for bulk, --undo and --redo)')
    .option('--pair <id>', 'one pair id')
    .option('--action <action>', 'keep | drop | swap (keep with chosen↔rejected exchanged) | note | clear (back to the automatic verdict)')
    .option('--note <text>', 'note (required with --action note; optional otherwise)')
    .option('--actor <name>', 'who decides (default: SPARSERM_ACTOR or the OS user)')
    .option('--file <decisions.jsonl>', 'one {"pair": id, "action": …, "note"?, "actor"?} per line, applied all or nothing')
    .option('--effective <list>', 'bulk: pairs whose effective decision is in the list (keep,drop,swap,uncertain,undecided)')
    .option('--verdict <list>', 'bulk: automatic verdict in the list (keep,drop,uncertain,none)')
    .option('--source <list>', 'bulk: source in the list')
    .option('--margin-min <x>', 'bulk: margin ≥ x')
    .option('--margin-max <x>', 'bulk: margin ≤ x')
    .option('--text <query>', 'bulk: full-text query over prompt and responses')
    .option('--latent <index>', 'bulk: pairs where this SAE latent fired (current run)')
    .option('--override', 'bulk: only pairs with a curator decision')
    .option('--no-override', 'bulk: only pairs without a curator decision')
    .option('--yes', 'confirm a bulk action', false)
    .option('--undo', 'undo the latest decision group of the dataset', false)
    .option('--redo', 'redo the latest undone group', false)
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: Opts) => {
        const store = openStore(o.db);
        try {
          const ds = o.dataset !== undefined ? store.datasets.resolve(o.dataset) : undefined;
          const modes = [o.undo, o.redo, o.file !== undefined, o.pair !== undefined].filter(Boolean).length;
          if (modes > 1) throw new InputError({ field: 'options', expected: 'only one of --pair, --file, --undo, --redo' });
          let out: Record<string, unknown>;
          if (o.undo || o.redo) {
            if (!ds) throw new InputError({ field: '--dataset', expected: `a dataset for --${o.undo ? 'undo' : 'redo'}` });
            const r = o.undo ? store.decisions.undo(ds.id, o.actor) : store.decisions.redo(ds.id, o.actor);
            if (!r.group) throw new InputError({ field: o.undo ? '--undo' : '--redo', expected: `something to ${o.undo ? 'undo' : 'redo'} in "${ds.name}"`, got: 'nothing' });
            out = { dataset: ds.name, [o.undo ? 'undone' : 'redone']: r.group.targetGroup, group: r.group, changed: r.changed, ...store.decisions.state(ds.id) };
          } else if (o.file !== undefined) {
            const r = await applyFile(store, o.file, ds?.id, { actor: o.actor });
            out = { file: o.file, ...r };
          } else if (o.pair !== undefined) {
            const id = num(o.pair, '--pair')!;
            const p = store.pairs.get(id);
            if (ds && p.datasetId !== ds.id) throw new InputError({ field: '--pair', expected: `a pair of "${ds.name}"`, got: `pair ${id} of another dataset` });
            const r = store.decisions.decidePair(id, parseAction(o.action), { note: o.note, actor: o.actor });
            out = { pair: store.pairs.get(id), group: r.group, changed: r.changed };
          } else {
            if (!ds) throw new InputError({ field: '--dataset', expected: 'a dataset (with --pair, --file, --undo/--redo or bulk filters)' });
            const f = whereFilter(o, ds.id);
            if (!f) throw new InputError({ field: 'options', expected: '--pair ID, --file FILE, --undo, --redo, or bulk filters (--effective, --verdict, --source, --margin-min/max, --text, --latent, --[no-]override) with --yes' });
            const act = parseAction(o.action);
            const n = store.pairs.count(f);
            if (!o.yes) throw new InputError({ field: '--yes', expected: `--yes to apply "${act}" to all ${n} matching pairs of "${ds.name}" (one undo reverts it)` });
            const r = store.decisions.decide(f, act, { note: o.note, actor: o.actor, description: `bulk ${act} on ${n} pairs matching ${JSON.stringify({ ...f, datasetId: undefined })}` });
            out = { dataset: ds.name, matched: n, changed: r.changed, group: r.group };
          }
          if (o.json) printJson(out);
          else process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        } finally {
          store.close();
        }
      }),
    );
}
