import type { Command } from 'commander';

import { formatAccuracy } from '../../engine/sparserm/metrics';
import { evaluateRewardModel, readPairsJsonl } from '../../engine/sparserm/service';
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
  includeSeen?: boolean;
  trainData?: string;
  ep?: string;
  json?: boolean;
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

export function register(program: Command): void {
  program
    .command('eval')
    .description('held-out accuracy (n, ties, 95% Wilson interval), ROC AUC of the margin, accuracy per source, and the paper\'s baselines on the same rows')
    .requiredOption('--model <dir>', 'reward-model folder (from `sparserm train`)')
    .option('--data <file>', 'JSONL of {prompt, chosen, rejected, source?}: any data; pairs whose prompt the model trained or validated on are left out')
    .option('--dataset <name>', 'a store dataset instead of --data')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--checkpoint <dir>', 'backbone folder, if it moved since training')
    .option('--include-seen', 'also evaluate pairs whose prompt the model was trained or validated on (overstates accuracy)')
    .option('--train-data <file>', 'the model\'s training JSONL: baselines then train on exactly the pairs the model trained on (default: those found in --data)')
    .option('--no-baselines', 'skip the dense probe / raw activations / random directions comparisons')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu (auto: CUDA, else a WebGPU GPU adapter, else CPU)', 'auto')
    .option('--json', 'print the report as one JSON document on stdout')
    .action(
      action(async (o: EvalOpts) => {
        const data = loadPairs(o);
        try {
          const r = await evaluateRewardModel({
            modelDir: o.model!,
            pairs: data.pairs,
            includeSeen: o.includeSeen === true,
            ...(o.trainData ? { trainPairs: readPairsJsonl(o.trainData) } : {}),
            baselines: o.baselines,
            checkpoint: o.checkpoint,
            ep: parseEp(o.ep),
            onProgress: progressPrinter(),
            onWarning: (w) => progress(`warning: ${w}`),
          });
          if (o.json) {
            printJson(r);
            return;
          }
          const out = (line: string) => process.stdout.write(line + '\n');
          const given = data.pairs.length - r.skipped.length;
          const overlap =
            r.overlap.pairs === null
              ? 'overlap with the training data unknown (older model folder)'
              : `${r.overlap.pairs} of ${given} pairs (${r.overlap.prompts} prompts) seen in training/validation${r.overlap.pairs ? (r.includeSeen ? ', included' : ', left out') : ''}`;
          const on = { 'test-split': 'the held-out test split', 'unseen-prompts': 'the pairs with unseen prompts', all: 'all given pairs' }[r.evaluatedOn];
          out(`${r.modelId} on ${on}: ${overlap}`);
          const nd = r.nearDuplicates;
          if (nd?.groups) out(`near-duplicates: ${nd.groups} prompt group(s) mix seen and unseen prompts; ${nd.unseenPairs} held-out pair(s) have a near-duplicate prompt the model saw (models trained since the near-duplicate split have none on their own data)`);
          out(`accuracy ${formatAccuracy(r)}, ROC AUC ${f3(r.auc)}, ${r.trainableParams} trainable parameters`);
          if (r.truncated) out(`${r.truncated} pair(s) truncated to the model's max tokens (oldest prompt tokens first, then the response end)`);
          const sources = Object.entries(r.perSource);
          if (sources.length) out(`per source (held-out pairs${r.overlap.pairs === null ? ', overlap unknown' : ''}):`);
          for (const [s, v] of sources) out(`  ${s}: ${formatAccuracy(v)}`);
          if (r.baselines.length) out(`baselines (trained on the ${r.baselineTrainN} pairs the model trained on${o.trainData ? '' : ' found in the data'}, tested on the same ${r.baselineTestN} pairs as SparseRM):`);
          for (const b of r.baselines) out(`  ${b.name}: accuracy ${formatAccuracy(b.test)}, AUC ${f3(b.test.auc)}, ${b.trainableParams} trainable parameters`);
          if (r.baselinesSkipped) out(`baselines skipped: ${r.baselinesSkipped}`);
        } finally {
          data.store?.close();
        }
      }),
    );
}
