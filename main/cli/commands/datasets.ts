import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { openStore } from '../../engine/store';
import { action, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('datasets')
    .description('list datasets with their pair counts by decision (or show / delete one)')
    .option('--show <name>', 'details of one dataset: imports, current rule, agreement with curators')
    .option('--delete <name>', 'delete a dataset with its pairs, scores and history (needs --yes)')
    .option('--yes', 'confirm --delete', false)
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { show?: string; delete?: string; yes: boolean; db?: string; json: boolean }) => {
        const store = openStore(o.db);
        try {
          if (o.delete !== undefined) {
            const d = store.datasets.resolve(o.delete);
            const n = store.pairs.count({ datasetId: d.id });
            if (!o.yes) throw new InputError({ field: '--yes', expected: `--yes to delete "${d.name}" and its ${n} pairs with all their decisions` });
            store.datasets.delete(d.id);
            if (o.json) printJson({ deleted: d.name, pairs: n });
            else process.stdout.write(`deleted "${d.name}" (${n} pairs)\n`);
            return;
          }
          if (o.show !== undefined) {
            const d = store.datasets.resolve(o.show);
            const summary = store.datasets.summary(d.id);
            const filter = store.runs.currentFilter(d.id) ?? null;
            const detail = {
              ...summary,
              ...summary.counts,
              imports: store.datasets.imports(d.id).map((i) => ({ id: i.id, file: i.file, sha256: i.fileSha256, format: i.format, imported: i.imported, duplicates: i.duplicates, skipped: i.skipped, at: i.finishedAt })),
              sources: store.pairs.sources(d.id),
              runs: store.runs.list(d.id),
              currentFilter: filter,
              agreement: store.decisions.agreement(d.id),
              undo: store.decisions.state(d.id),
              lineage: store.generations.lineage(d.id) ?? null,
            };
            if (o.json) printJson(detail);
            else process.stdout.write(JSON.stringify(detail, null, 2) + '\n');
            return;
          }
          const list = store.datasets.summaries().map((s) => ({ ...s, ...s.counts, lineage: store.generations.lineage(s.id) ?? null }));
          if (o.json) printJson(list);
          else if (list.length === 0) process.stdout.write('no datasets yet (sparserm import FILE --dataset NAME)\n');
          else {
            process.stdout.write('name\tpairs\tkeep\tswap\tdrop\tuncertain\tundecided\thuman\tlineage\n');
            // Lineage of generated datasets: round, recipe, policy, parent (imported datasets: '-').
            const lin = (l: (typeof list)[number]['lineage']) => (l ? `round ${l.round} ${l.recipe} by ${l.policyLabel}${l.parentDatasetId !== null ? ` from #${l.parentDatasetId}` : ''}` : '-');
            for (const s of list) process.stdout.write(`${s.name}\t${s.pairs}\t${s.keep}\t${s.swap}\t${s.drop}\t${s.uncertain}\t${s.undecided}\t${s.humanDecided}\t${lin(s.lineage)}\n`);
          }
        } finally {
          store.close();
        }
      }),
    );
}
