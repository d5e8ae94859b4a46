import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { dedupeDataset } from '../../engine/sparserm/dedupe';
import { DEFAULT_NEAR_DUP_THRESHOLD } from '../../engine/sparserm/near-duplicates';
import { openStore } from '../../engine/store';
import { action, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('dedupe')
    .description('group near-duplicate prompts of a dataset (MinHash over character 5-shingles + LSH) and store the groups: the prompt split keeps each group on one side, Review filters by group, export --one-per-group keeps one pair per group')
    .requiredOption('--dataset <name>', 'dataset')
    .option('--threshold <J>', `Jaccard similarity of the shingle sets at or above which prompts are grouped, in (0, 1]`, String(DEFAULT_NEAR_DUP_THRESHOLD))
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { dataset: string; threshold: string; db?: string; json: boolean }) => {
        const threshold = Number(o.threshold);
        if (!(threshold > 0 && threshold <= 1)) throw new InputError({ field: '--threshold', expected: 'a number in (0, 1]', got: JSON.stringify(o.threshold) });
        const store = openStore(o.db);
        try {
          const r = dedupeDataset(store, o.dataset, { threshold });
          if (o.json) {
            printJson(r);
            return;
          }
          const out = (s: string) => process.stdout.write(s + '\n');
          out(`dataset "${r.dataset}": ${r.pairs} pairs, ${r.prompts} distinct prompts → ${r.groups} groups (Jaccard ≥ ${r.threshold}, ${r.scheme}, ${r.seconds.toFixed(1)} s)`);
          out(`near-duplicate groups (≥ 2 distinct prompts): ${r.nearGroups}, holding ${r.nearPairs} pairs`);
          const x = r.crossedUnderExactSplit;
          out(`of those, ${x.crossed} were split across train/val/test by the exact-text prompt split (seed ${x.seed}, val ${x.valFraction}, test ${x.testFraction}); the split now keeps each group on one side`);
          for (const g of r.largest) out(`  group ${g.groupId}: ${g.pairs} pairs, e.g. ${g.prompts.map((p) => JSON.stringify(p.slice(0, 80))).join(' | ')}`);
        } finally {
          store.close();
        }
      }),
    );
}
