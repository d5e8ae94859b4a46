import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { explainPair, scoreDatasetIntoStore, scorePairs, readRewardModel, skipMessage, type SkippedPair } from '../../engine/sparserm/service';
import { formatAccuracy, pairAccuracy } from '../../engine/sparserm/metrics';
import { openStore } from '../../engine/store';
import { action, printJson, progress } from '../output';
import { parseEp, parsePrecision, PRECISION_HELP } from './hidden';
import { loadPairs, parseIntOpt, progressPrinter } from './train';

interface ScoreOpts {
  model?: string;
  data?: string;
  dataset?: string;
  db?: string;
  checkpoint?: string;
  explain?: string;
  top?: string;
  ep?: string;
  precision?: string;
  json?: boolean;
  /** false with --no-prefix-share. */
  prefixShare?: boolean;
}

export function register(program: Command): void {
  program
    .command('score')
    .description('score pairs with a trained reward model: s(chosen), s(rejected), margin, P(chosen ≻ rejected) = σ(margin)')
    .requiredOption('--model <dir>', 'reward-model folder (from `sparserm train`)')
    .option('--data <file>', 'JSONL of {prompt, chosen, rejected, source?}')
    .option('--dataset <name>', 'a store dataset: scores are recorded as a scoring run')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--checkpoint <dir>', 'backbone folder, if it moved since training (must have the same content hash)')
    .option('--explain <index>', 'explain pair #index (0-based): score = bias + exact latent contributions, each split over the response tokens; the margin by latent; where each SAE latent fired')
    .option('--top <n>', 'latents per response in --explain', '10')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu (auto: CUDA, else a WebGPU GPU adapter, else CPU)', 'auto')
    .option('--precision <p>', `${PRECISION_HELP}; default: the precision the model was trained at (another one warns)`)
    .option('--no-prefix-share', 'run every response with its whole prompt (default: a prompt shared by responses runs once; same features within 1e-4)')
    .option('--json', 'print the result as one JSON document on stdout')
    .action(
      action(async (o: ScoreOpts) => {
        const ep = parseEp(o.ep);
        const precision = o.precision === undefined ? undefined : parsePrecision(o.precision);
        const onProgress = progressPrinter();
        if (o.dataset && o.explain === undefined) {
          if (o.data) throw new InputError({ field: '--data/--dataset', expected: 'one of --data FILE or --dataset NAME', got: 'both' });
          const store = openStore(o.db);
          try {
            const res = await scoreDatasetIntoStore({ store, dataset: o.dataset, modelDir: o.model!, checkpoint: o.checkpoint, ep, precision, prefixShare: o.prefixShare, onProgress, onWarning: (w) => progress(`warning: ${w}`) });
            if (o.json) printJson(res);
            else process.stdout.write(`scoring run ${res.runId}: ${res.pairs} pairs, accuracy (margin > 0, all pairs incl. any trained on; see sparserm eval for held-out) ${formatAccuracy(res)}${res.truncated ? `; ${res.truncated} pair(s) truncated to the model's max tokens` : ''}${res.skipped.length ? `; ${res.skipped.length} pair(s) skipped (listed on stderr)` : ''}\n`);
          } finally {
            store.close();
          }
          return;
        }
        const data = loadPairs(o);
        try {
          if (o.explain !== undefined) {
            const i = parseIntOpt('--explain', o.explain)!;
            const p = data.pairs[i];
            if (!p) throw new InputError({ field: '--explain', expected: `a pair index 0..${data.pairs.length - 1}`, got: String(i) });
            const model = await readRewardModel(o.model!);
            const ls = model.manifest.sae.labels;
            let labels: Map<number, string> | undefined;
            if (ls) {
              try {
                const store = data.store ?? openStore(o.db);
                labels = store.labels.best(ls.modelId, ls.saeId, model.manifest.selected.map((s) => s.index));
                if (!data.store) store.close();
              } catch {
                labels = undefined; // labels are optional; no store yet is fine
              }
            }
            const ex = await explainPair({ modelDir: o.model!, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, top: parseIntOpt('--top', o.top, 1), labels, checkpoint: o.checkpoint, ep });
            if (o.json) printJson({ index: i, id: p.id, ...ex });
            else {
              process.stdout.write(`pair ${i}: margin ${ex.margin.toFixed(4)}, P(chosen ≻ rejected) ${ex.pChosen.toFixed(3)}\n${ex.why}\n`);
              if (ex.chosen.saeEncoding) process.stdout.write(`SAE activations: ${ex.chosen.saeEncoding === 'authors' ? "the Llama Scope authors' encoding (unit-norm decoder)" : "SAELens's encoding"}\n`);
              for (const side of ['chosen', 'rejected'] as const) {
                const e = ex[side];
                process.stdout.write(`${side}: score ${e.score.toFixed(4)} = bias ${e.bias.toFixed(4)} + Σ contributions of all selected latents (exact; top ${e.contributions.length} below; --json splits each over the tokens)\n`);
                for (const c of e.contributions) {
                  const fired = c.firing.peak ? `SAE latent fired on ${c.firing.tokensFired} token(s), peak ${JSON.stringify(c.firing.peak.text)} ${c.firing.peak.activation.toFixed(3)}` : 'SAE latent did not fire';
                  process.stdout.write(`  latent ${c.latent} (${c.side}${c.label ? `: ${c.label}` : ''}) contribution ${c.contribution.toFixed(4)}; projection ${c.projection.toFixed(3)} vs training mean ${c.trainingMean.toFixed(3)} (σ ${c.trainingStd.toFixed(3)}); ${fired}\n`);
                }
              }
            }
            return;
          }
          const skipped: SkippedPair[] = [];
          const onSkip = (sp: SkippedPair) => {
            skipped.push(sp);
            progress(`warning: ${skipMessage(sp)}`);
          };
          const scores = await scorePairs({ modelDir: o.model!, pairs: data.pairs, checkpoint: o.checkpoint, ep, precision, prefixShare: o.prefixShare, onProgress, onWarning: (w) => progress(`warning: ${w}`), onSkip });
          const acc = pairAccuracy(scores.map((s) => s.margin)); // exact ties apart, not ½
          const { accuracy } = acc;
          const truncated = scores.filter((s) => s.truncation).length;
          if (o.json) printJson({ model: o.model, n: scores.length, accuracy, correct: acc.correct, ties: acc.ties, ci95: acc.ci95, pairs: scores, skipped, truncated, controlStrings: scores.reduce((n, s) => n + (s.controlStrings ?? 0), 0) });
          else {
            for (const s of scores) process.stdout.write(`${s.index}\t${s.id ?? ''}\t${s.chosen.toFixed(4)}\t${s.rejected.toFixed(4)}\t${s.margin.toFixed(4)}\t${s.pChosen.toFixed(3)}\n`);
            process.stdout.write(`${scores.length} pairs, accuracy (margin > 0, all given pairs; see sparserm eval for held-out) ${formatAccuracy(acc)}${truncated ? `; ${truncated} truncated to the model's max tokens` : ''}\n`);
          }
        } finally {
          data.store?.close();
        }
      }),
    );
}
