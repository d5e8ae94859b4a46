import type { Command } from 'commander';

import { runDemo } from '../../engine/demo/run-demo';
import { InputError } from '../../engine/errors';
import { EP_REQUESTS, type EpRequest } from '../../engine/runtime/ort';
import { action, printJson, progress } from '../output';
import { stageProgress } from '../progress';

/**
 * `sparserm demo`: the main job end to end on the built-in demo kit (generated on first use). Progress and a short
 * human summary go to stderr; the LAST stdout line is the path of the file the demo produced (with --json, one
 * JSON document whose `output` field is that path).
 */
export function register(program: Command): void {
  program
    .command('demo')
    .description('run the main job on the demo kit (tiny random-weight Gemma-2 + SAE + TruthfulQA pairs; generated on first use)')
    .option('--out <dir>', 'where to write the export (default: <data home>/demo)')
    .option('--db <file>', 'database file (default: SPARSERM_DB, else <data home>/sparserm.db)')
    .option('--ep <ep>', 'compute device for the backbone: auto | cuda | webgpu | cpu', 'auto')
    .option('--baselines', "also train the paper's comparisons (dense probe, raw SAE activations, random directions) and show them beside SparseRM")
    .option('--json', 'print one JSON document on stdout')
    .action(
      action(async (opts: { out?: string; db?: string; ep: string; baselines?: boolean; json?: boolean }) => {
        if (!(EP_REQUESTS as readonly string[]).includes(opts.ep)) throw new InputError({ field: '--ep', expected: 'auto, cuda, webgpu or cpu', got: JSON.stringify(opts.ep) });
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        try {
          const result = await runDemo({
            outDir: opts.out,
            db: opts.db,
            ep: opts.ep as EpRequest,
            baselines: opts.baselines,
            signal: controller.signal,
            // Each phase once (interim lines only for slow ones), epochs one by one, and what was reused or why
            // training stopped — readable in a terminal and in CI logs.
            onProgress: stageProgress(progress),
          });
          for (const line of result.summary) progress(line);
          if (opts.json) {
            const { summary: _summary, ...rest } = result;
            printJson({ ...rest, output: result.outputFile });
          } else {
            process.stdout.write(result.outputFile + '\n');
          }
        } finally {
          process.off('SIGINT', onSigint);
        }
      }),
    );
}
