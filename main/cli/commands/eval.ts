import type { Command } from 'commander';

import { evaluateRewardModel } from '../../engine/sparserm/service';
import { action, printJson, progress } from '../output';
import { parseEp } from './hidden';
import { loadPairs, progressPrinter } from './train';

interface EvalOpts {
  model?: string;
  data?: string;
  dataset?: string;
  db?: string;
  checkpoint?: string;
  baselines?: boolean;
  ep?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('held-out accuracy, ROC AUC of the margin, accuracy per source, and the paper\'s baselines on the same features')
    .requiredOption('--model <dir>', 'reward-model folder (from `sparserm train`)')
    .option('--data <file>', 'JSONL of {prompt, chosen, rejected, source?} (the training data → its held-out test split; other data → all of it)')
    .option('--dataset <name>', 'a store dataset instead of --data')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--checkpoint <dir>', 'backbone folder, if it moved since training')
    .option('--no-baselines', 'skip the dense probe / raw activations / random directions comparisons')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda', 'auto')
    .option('--json', 'print the report as one JSON document on stdout')
    .action(
      action(async (o: EvalOpts) => {
        const data = loadPairs(o);
        try {
          const r = await evaluateRewardModel({ modelDir: o.model!, pairs: data.pairs, baselines: o.baselines, checkpoint: o.checkpoint, ep: parseEp(o.ep), onProgress: progressPrinter(), onWarning: (w) => progress(`warning: ${w}`) });
          if (o.json) printJson(r);
          else {
            process.stdout.write(`${r.modelId} on ${r.evaluatedOn === 'test-split' ? 'the held-out test split' : 'all given pairs'}: ${r.n} pairs, accuracy ${r.accuracy.toFixed(3)}, ROC AUC ${r.auc.toFixed(3)}, ${r.trainableParams} trainable parameters\n`);
            for (const [s, v] of Object.entries(r.perSource)) process.stdout.write(`  ${s}: ${v.n} pairs, accuracy ${v.accuracy.toFixed(3)}\n`);
            if (r.baselines.length) process.stdout.write(`baselines (trained on the train split, tested on ${r.baselineTestN} test pairs; SparseRM there: accuracy ${r.baselines[0].vsSparseRm?.accuracy.toFixed(3)}):\n`);
            for (const b of r.baselines) process.stdout.write(`  ${b.name}: accuracy ${b.test.accuracy.toFixed(3)}, AUC ${b.test.auc.toFixed(3)}, ${b.trainableParams} trainable parameters\n`);
          }
        } finally {
          data.store?.close();
        }
      }),
    );
}
