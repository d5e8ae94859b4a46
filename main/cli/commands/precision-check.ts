import type { Command } from 'commander';

import { parsePrecision } from '../../engine/backbone/linear-weights';
import { InputError } from '../../engine/errors';
import { precisionCheck, type PrecisionCheckReport } from '../../engine/sparserm/precision-check';
import { skipMessage, type SkippedPair } from '../../engine/sparserm/pair-jobs';
import { action, printJson, progress } from '../output';
import { parseEp } from './hidden';
import { loadPairs, parseIntOpt, progressPrinter } from './train';

interface Opts {
  model: string;
  data?: string;
  dataset?: string;
  db?: string;
  precision: string;
  threshold?: string;
  limit?: string;
  checkpoint?: string;
  ep?: string;
  json?: boolean;
}

const fmt = (x: number, d = 6) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

export function formatReport(r: PrecisionCheckReport): string {
  const l = r.latents;
  const d = r.decisions;
  return [
    `precision ${r.precision} vs f32 on ${r.pairs} pairs (${r.responses} responses), ${r.seconds.toFixed(1)} s`,
    `pooled z cosine: mean ${fmt(r.cosine.mean)}, min ${fmt(r.cosine.min)}${r.cosine.minResponse >= 0 ? ` (response ${r.cosine.minResponse}: pair ${r.cosine.minResponse >> 1} ${r.cosine.minResponse % 2 ? 'rejected' : 'chosen'})` : ''}; largest relative error ${r.zRelError.toExponential(2)}`,
    `selected latents firing (${l.selected}): Jaccard mean ${fmt(l.jaccardMean, 4)}, agreement ${fmt(100 * l.agreement, 2)} % of response × latent cells, ${l.responsesChanged} response(s) with a change`,
    `margins: Spearman ${fmt(r.margins.spearman, 5)}, max |Δ| ${fmt(r.margins.maxAbsDiff, 5)}, mean |Δ| ${fmt(r.margins.meanAbsDiff, 5)}`,
    `filter decisions (keep when margin ≥ ${d.threshold}): ${d.flips} flip(s) of ${r.pairs}; keep ${d.keepReference} at f32, ${d.keepChecked} at ${r.precision}${d.flipped.length ? `; flipped pairs ${d.flipped.join(', ')}${d.flips > d.flipped.length ? ', …' : ''}` : ''}`,
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('precision-check')
    .description("how much a cheaper backbone precision changes a reward model on your own pairs, against f32: cosine of pooled z, which selected latents fire, Spearman of margins, filter decisions that flip")
    .requiredOption('--model <dir>', 'reward-model folder (from `sparserm train`)')
    .option('--data <file>', 'JSONL of {prompt, chosen, rejected, source?}')
    .option('--dataset <name>', 'a store dataset instead of a file')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .requiredOption('--precision <p>', 'the backbone precision to check against f32 (f16, int8, int4, … whatever the engine accepts)')
    .option('--threshold <tau>', 'margin threshold τ of the keep/drop decision (keep when margin ≥ τ)', '0')
    .option('--limit <n>', 'check only the first n pairs (each runs the backbone at both precisions)')
    .option('--checkpoint <dir>', 'backbone folder, if it moved since training (must have the same content hash)')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu', 'auto')
    .option('--json', 'print the report as one JSON document on stdout')
    .action(
      action(async (o: Opts) => {
        const ep = parseEp(o.ep);
        const precision = parsePrecision(o.precision, '--precision');
        const threshold = Number(o.threshold ?? '0');
        if (!Number.isFinite(threshold)) throw new InputError({ field: '--threshold', expected: 'a finite number', got: JSON.stringify(o.threshold) });
        const limit = parseIntOpt('--limit', o.limit, 1);
        const data = loadPairs(o);
        try {
          const pairs = limit !== undefined ? data.pairs.slice(0, limit) : data.pairs;
          const skipped: SkippedPair[] = [];
          const report = await precisionCheck({
            modelDir: o.model,
            pairs,
            precision,
            threshold,
            checkpoint: o.checkpoint,
            ep,
            onProgress: progressPrinter(),
            onWarning: (w) => progress(`warning: ${w}`),
            onSkip: (sp) => {
              skipped.push(sp);
              progress(`warning: ${skipMessage(sp)}`);
            },
          });
          if (o.json) printJson({ model: o.model, ...report });
          else process.stdout.write(formatReport(report) + '\n');
        } finally {
          data.store?.close();
        }
      }),
    );
}
