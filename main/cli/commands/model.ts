import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';

import { ensureBackboneGraph, loadCheckpoint, pruneGraphCache } from '../../engine/backbone';
import { InputError } from '../../engine/errors';
import { action, printJson, progress } from '../output';
import { openProgress, parseLayer, parsePrecision, PRECISION_HELP } from './hidden';

function dirSize(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirSize(p) : fs.statSync(p).size;
  }
  return total;
}

export function register(program: Command): void {
  const model = program.command('model').description('backbone checkpoints: inspect, build the truncated ONNX graph');

  model
    .command('build')
    .description('build (or reuse from the graph cache) the ONNX graph of the backbone truncated after block L')
    .requiredOption('--checkpoint <dir>', 'Hugging Face checkpoint folder (config.json + safetensors)')
    .requiredOption('--layer <L>', 'last block, 0-based')
    .option('--precision <p>', PRECISION_HELP, 'f32')
    .option('--json', 'print one JSON document on stdout')
    .action(
      action(async (opts: { checkpoint: string; layer: string; precision?: string; json?: boolean }) => {
        const layer = parseLayer(opts.layer);
        const precision = parsePrecision(opts.precision);
        const ckpt = await loadCheckpoint(opts.checkpoint);
        try {
          const controller = new AbortController();
          const onSigint = () => controller.abort();
          process.once('SIGINT', onSigint);
          const g = await ensureBackboneGraph(ckpt, { layer, precision, onProgress: openProgress(), signal: controller.signal }).finally(() =>
            process.off('SIGINT', onSigint),
          );
          const result = {
            graphPath: g.graphPath,
            dir: g.dir,
            reused: g.reused,
            checkpointHash: g.manifest.checkpointHash,
            architecture: g.manifest.architecture,
            layer,
            numLayers: g.manifest.numLayers,
            precision,
            sizeBytes: dirSize(g.dir),
            buildMs: g.manifest.buildMs,
          };
          if (opts.json) printJson(result);
          else {
            progress(`${g.reused ? 'reused' : 'built'} graph for blocks 0..${layer} of ${g.manifest.numLayers} (${precision}, ${(result.sizeBytes / 1e6).toFixed(1)} MB)`);
            process.stdout.write(g.graphPath + '\n');
          }
        } finally {
          ckpt.close();
        }
      }),
    );

  model
    .command('prune')
    .description('free graph-cache space: half-written graphs, older graph formats, graphs of deleted checkpoints, crashed-build leftovers')
    .option('--all', 'remove every cached graph (they are rebuilt on demand)')
    .option('--unused-for <days>', 'also remove graphs not built or reused for this many days')
    .option('--dry-run', 'only list what would be removed')
    .option('--json', 'print one JSON document on stdout')
    .action(
      action((opts: { all?: boolean; unusedFor?: string; dryRun?: boolean; json?: boolean }) => {
        const days = opts.unusedFor === undefined ? undefined : Number(opts.unusedFor);
        if (days !== undefined && !(days >= 0)) throw new InputError({ field: '--unused-for', expected: 'a number of days ≥ 0', got: JSON.stringify(opts.unusedFor) });
        const r = pruneGraphCache({ all: opts.all, unusedForDays: days, dryRun: opts.dryRun });
        if (opts.json) printJson({ ...r, dryRun: !!opts.dryRun });
        else {
          for (const x of r.removed) process.stdout.write(`${opts.dryRun ? 'would remove' : 'removed'} ${x.name} (${(x.sizeBytes / 1e6).toFixed(1)} MB): ${x.reason}\n`);
          progress(`${opts.dryRun ? 'would free' : 'freed'} ${(r.freedBytes / 1e6).toFixed(1)} MB; ${r.kept} graph(s) kept`);
        }
      }),
    );

  model
    .command('info')
    .description('validate a checkpoint folder and print its configuration, tensors and content hash')
    .requiredOption('--checkpoint <dir>', 'Hugging Face checkpoint folder')
    .option('--layer <L>', 'also check every tensor of blocks 0..L and print the hash that keys its caches')
    .option('--json', 'print one JSON document on stdout')
    .action(
      action(async (opts: { checkpoint: string; layer?: string; json?: boolean }) => {
        const ckpt = await loadCheckpoint(opts.checkpoint);
        try {
          const c = ckpt.config;
          const layer = opts.layer === undefined ? undefined : parseLayer(opts.layer);
          if (layer !== undefined) ckpt.validateThrough(layer);
          const report = openProgress();
          const dtypes: Record<string, number> = {};
          for (const t of ckpt.tensors.values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
          const { arch, ...config } = c;
          const result = {
            checkpoint: ckpt.dir,
            architecture: arch.id,
            config,
            files: ckpt.files.map((f) => ({ file: path.basename(f), sizeBytes: fs.statSync(f).size })),
            tensors: ckpt.tensors.size,
            dtypes,
            ...(layer !== undefined ? { layer, checkpointHash: await ckpt.contentHash(layer, { onProgress: (d, t) => report({ phase: 'hash', done: d, total: t }) }) } : {}),
          };
          if (opts.json) printJson(result);
          else process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        } finally {
          ckpt.close();
        }
      }),
    );
}
