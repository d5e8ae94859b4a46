import type { Command } from 'commander';

import { openBackbone, parsePrecision as parseBackbonePrecision, type Precision } from '../../engine/backbone';
import { InputError } from '../../engine/errors';
import { EP_REQUESTS, type EpRequest } from '../../engine/runtime/ort';
import { action, printJson, progress } from '../output';

/** Option parsing shared by the backbone commands (hidden, model): errors are InputErrors (exit 2). */
export function parseLayer(v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < 0) {
    throw new InputError({ field: '--layer', expected: 'a block index ≥ 0', got: v === undefined ? 'nothing' : JSON.stringify(v) });
  }
  return n;
}

export function parsePrecision(v: string | undefined): Precision {
  return parseBackbonePrecision(v, '--precision');
}

/** Help text of every --precision option. */
export const PRECISION_HELP = 'f32 | f16 (16-bit, for CUDA) | int8 | int4 (weight-only quantized projections, f32 residual stream; less memory, faster on CPU)';

export function parseEp(v: string | undefined): EpRequest {
  if (v === undefined) return 'auto';
  if (!(EP_REQUESTS as readonly string[]).includes(v)) throw new InputError({ field: '--ep', expected: 'auto, cpu, cuda or webgpu', got: JSON.stringify(v) });
  return v as EpRequest;
}

export function parseIds(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  const bad = parts.findIndex((s, i) => s === '' || !Number.isInteger(ids[i]) || ids[i] < 0);
  if (bad >= 0) throw new InputError({ field: '--ids', expected: 'comma-separated non-negative integer token ids, e.g. 2,17,45', got: JSON.stringify(parts[bad]) });
  return ids;
}

/**
 * Progress of the first open (hashing the checkpoint, building the graph): one line per 10 %, only once a phase
 * has lasted over a second (small checkpoints and cache hits stay quiet).
 */
export function openProgress(): (e: { phase: 'hash' | 'build'; done: number; total: number }) => void {
  let last = '';
  let phase = '';
  let since = 0;
  return (e) => {
    if (e.phase !== phase) {
      phase = e.phase;
      since = Date.now();
    }
    if (Date.now() - since < 1000) return;
    const pct = e.total ? Math.floor((10 * e.done) / e.total) * 10 : 100;
    const key = `${e.phase}:${pct}`;
    if (key === last) return;
    last = key;
    progress(`${e.phase === 'hash' ? 'hashing checkpoint' : 'building graph'}: ${pct}%`);
  };
}

interface HiddenOpts {
  checkpoint?: string;
  layer?: string;
  ids?: string;
  text?: string;
  precision?: string;
  ep?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('hidden')
    .description('resid_post of block L (output of block L) for every token, BOS included, through the built ONNX graph')
    .requiredOption('--checkpoint <dir>', 'Hugging Face checkpoint folder (config.json + safetensors)')
    .requiredOption('--layer <L>', 'block index, 0-based (resid_post of that block)')
    .option('--ids <ids>', 'comma-separated token ids (no tokenizer needed), e.g. 2,17,45')
    .option('--text <text>', 'text to tokenize with the checkpoint\'s tokenizer.json (BOS added)')
    .option('--precision <p>', PRECISION_HELP, 'f32')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu (auto: CUDA, else a WebGPU GPU adapter, else CPU)', 'auto')
    .option('--json', 'print {"layer", "ids", "hidden": [[…hidden_size floats] per token]} on stdout')
    .action(
      action(async (opts: HiddenOpts) => {
        const layer = parseLayer(opts.layer);
        const precision = parsePrecision(opts.precision);
        const ep = parseEp(opts.ep);
        if ((opts.ids === undefined) === (opts.text === undefined)) {
          throw new InputError({ field: '--ids/--text', expected: 'exactly one of --ids or --text', got: opts.ids === undefined ? 'neither' : 'both' });
        }
        let ids: number[];
        let tokens: string[] | undefined;
        if (opts.ids !== undefined) {
          ids = parseIds(opts.ids);
        } else {
          // Imported lazily: --ids must work on a folder without tokenizer files.
          const { loadTokenizer } = await import('../../engine/backbone/tokenizer');
          const tok = await loadTokenizer(opts.checkpoint!);
          ids = tok.encodeText(opts.text!);
          tokens = tok.tokenStrings(ids);
        }
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        const session = await openBackbone({ checkpoint: opts.checkpoint!, layer, precision, ep, onProgress: openProgress(), signal: controller.signal });
        try {
          if (session.info.ep !== ep && ep !== 'auto') progress(`warning: ${session.info.epReason}`);
          const bos = session.info.bosTokenId;
          if (opts.ids !== undefined && bos !== undefined && ids[0] !== bos) {
            // Gemma's activations (and Gemma Scope SAEs) assume BOS first; say so rather than silently differ.
            progress(`warning: the first id is ${ids[0]}, not BOS (${bos}); activations without BOS differ from what SAEs were trained on`);
          }
          const [h] = await session.hidden([ids], { signal: controller.signal });
          const H = session.info.hiddenSize;
          const rows = Array.from({ length: ids.length }, (_, t) => Array.from(h.subarray(t * H, (t + 1) * H)));
          if (opts.json) {
            printJson({ layer, ids, hidden: rows });
          } else {
            progress(`resid_post of block ${layer} (${session.info.architecture}, hidden ${H}, ${session.info.ep}: ${session.info.epReason})`);
            rows.forEach((r, t) => {
              const norm = Math.sqrt(r.reduce((a, v) => a + v * v, 0));
              const head = r.slice(0, 4).map((v) => v.toFixed(4)).join(', ');
              const tok = tokens ? ` ${JSON.stringify(tokens[t])}` : '';
              process.stdout.write(`${t}\tid ${ids[t]}${tok}\t‖x‖ ${norm.toFixed(3)}\t[${head}${H > 4 ? ', …' : ''}]\n`);
            });
          }
        } finally {
          process.off('SIGINT', onSigint);
          await session.close();
        }
      }),
    );
}
