import type { Command } from 'commander';

import { runDemo } from '../../engine/demo/run-demo';
import { action, printJson, progress } from '../output';

/**
 * `sparserm demo`: the main job end to end on the built-in demo kit (generated on first use). Progress and a short
 * human summary go to stderr; the LAST stdout line is the path of the file the demo produced (with --json, one
 * JSON document whose `output` field is that path).
 */
export function register(program: Command): void {
  program
    .command('demo')
    .description('run the main job on the demo kit (tiny random-weight Gemma-2 + SAE + TruthfulQA pairs; generated on first use)')
    .option('--limit <n>', 'use only the first N demo pairs (quicker)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 8) throw new Error(`--limit: expected an integer ≥ 8, got ${JSON.stringify(v)}`);
      return n;
    })
    .option('--out <dir>', 'where to write results (default: <data home>/demo)')
    .option('--json', 'print one JSON document on stdout')
    .action(
      action(async (opts: { limit?: number; out?: string; json?: boolean }) => {
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        let lastPhase = '';
        let lastPct = -1;
        try {
          const result = await runDemo({
            limit: opts.limit,
            outDir: opts.out,
            signal: controller.signal,
            onProgress: (p) => {
              const pct = p.total ? Math.floor((100 * p.done) / p.total) : 0;
              // One line per phase change or 10 % step: readable in a terminal and in CI logs.
              if (p.phase !== lastPhase || pct >= lastPct + 10 || p.done === p.total) {
                progress(`${p.phase}: ${p.done}/${p.total}`);
                lastPhase = p.phase;
                lastPct = pct;
              }
            },
          });
          for (const line of result.summary) progress(line);
          if (opts.json) {
            const { kit, ...rest } = result;
            printJson({ ...rest, label: kit.label, kit, output: result.outputFile });
          } else {
            process.stdout.write(result.outputFile + '\n');
          }
        } finally {
          process.off('SIGINT', onSigint);
        }
      }),
    );
}
