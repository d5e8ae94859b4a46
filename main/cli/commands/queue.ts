/** `sparserm queue`: the active review queue of a dataset (review-queue.ts) — the pairs to decide next, and why. */
import type { Command } from 'commander';

import { openStore } from '../../engine/store';
import { reviewQueue } from '../../engine/sparserm/review-queue';
import { action, printJson } from '../output';
import { parseIntOpt } from './train';

interface Opts {
  dataset: string;
  limit?: string;
  db?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('queue')
    .description("the undecided pairs whose decision would change the model most: smallest |margin| first, then where the current and previous reward model disagree")
    .requiredOption('--dataset <name>', 'dataset (name or id)')
    .option('--limit <n>', 'how many pairs to list', '20')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'print the queue as one JSON document on stdout')
    .action(
      action((o: Opts) => {
        const store = openStore(o.db);
        try {
          const ds = store.datasets.resolve(o.dataset);
          const q = reviewQueue(store, ds.id, { limit: parseIntOpt('--limit', o.limit, 1) });
          if (o.json) return printJson({ dataset: ds.name, ...q });
          if (q.runId === null) {
            process.stdout.write(`dataset "${ds.name}" has no finished scoring run: score it first (sparserm score --dataset ${ds.name} …)\n`);
            return;
          }
          const prev = q.previousRunId !== null ? `, previous run ${q.previousRunId} (${q.previousRewardModelId})` : '';
          process.stdout.write(`queue of "${ds.name}": ${q.total} undecided scored pairs; run ${q.runId} (${q.rewardModelId})${prev}\n`);
          for (const it of q.items) process.stdout.write(`pair ${it.pairId}\tmargin ${it.margin.toFixed(4)}\t${it.reasons.join('; ')}\n`);
        } finally {
          store.close();
        }
      }),
    );
}
