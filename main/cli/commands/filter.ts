import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { openStore } from '../../engine/store';
import { action, printJson } from '../output';

function num(v: string | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InputError({ field, expected: 'a number', got: `"${v}"` });
  return n;
}

export function register(program: Command): void {
  program
    .command('filter')
    .description('apply the filtering rule to a scoring run: automatic keep / drop / uncertain verdicts (curator decisions still override them)')
    .requiredOption('--dataset <name>', 'dataset')
    .option('--rule <rule>', 'paper (drop where s_chosen < s_rejected) | margin (drop where margin < τ); default: margin if --threshold is given, else paper')
    .option('--threshold <tau>', 'margin threshold τ (margin = s_chosen − s_rejected)')
    .option('--band <b>', 'uncertain band: |margin − τ| < b → uncertain, reviewed first', '0')
    .option('--run <id>', 'scoring run id (default: the latest finished run of the dataset)')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { dataset: string; rule?: string; threshold?: string; band: string; run?: string; db?: string; json: boolean }) => {
        const store = openStore(o.db);
        try {
          const d = store.datasets.resolve(o.dataset);
          const threshold = num(o.threshold, '--threshold');
          const band = num(o.band, '--band')!;
          const rule = o.rule ?? (threshold !== undefined ? 'margin' : 'paper');
          if (rule !== 'paper' && rule !== 'margin') throw new InputError({ field: '--rule', expected: 'paper or margin', got: rule });
          if (rule === 'paper' && threshold !== undefined && threshold !== 0) throw new InputError({ field: '--threshold', expected: 'no threshold with --rule paper (it is τ = 0); use --rule margin' });
          let runId: number;
          if (o.run !== undefined) {
            const n = num(o.run, '--run')!;
            runId = store.runs.get(n).id;
          } else {
            const latest = store.runs.latestDone(d.id);
            if (!latest) throw new InputError({ field: '--run', expected: `a finished scoring run of "${d.name}" (score it first: sparserm score)` });
            runId = latest.id;
          }
          const f = store.runs.applyFilter({ datasetId: d.id, runId, rule, threshold, band });
          const counts = store.datasets.countsByDecision(d.id);
          const out = { dataset: d.name, filter: f, verdicts: f.counts, effective: counts, agreement: store.decisions.agreement(d.id) };
          if (o.json) printJson(out);
          else {
            process.stdout.write(`rule ${f.rule} τ=${f.threshold} band=${f.band} on run ${f.runId}: keep ${f.counts.keep}, drop ${f.counts.drop}, uncertain ${f.counts.uncertain}, unscored ${f.counts.unscored}\n`);
            process.stdout.write(`effective (curator decisions override): keep ${counts.keep}, swap ${counts.swap}, drop ${counts.drop}, uncertain ${counts.uncertain}, undecided ${counts.undecided}\n`);
          }
        } finally {
          store.close();
        }
      }),
    );
}
