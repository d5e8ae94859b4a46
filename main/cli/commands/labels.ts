import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { importLabels } from '../../engine/data';
import { openStore } from '../../engine/store';
import { action, printJson } from '../output';

export function register(program: Command): void {
  const labels = program.command('labels').description('latent labels (Neuronpedia explanations)');
  labels
    .command('import')
    .description('import Neuronpedia explanation exports (JSON array, JSONL, .gz) keyed by model, SAE source and latent index')
    .argument('<file>', 'export file')
    .option('--model <id>', 'model id for rows without one (overrides the rows), e.g. gemma-2-9b-it')
    .option('--sae <id>', 'SAE source id for rows without one (overrides the rows), e.g. 31-gemmascope-res-16k')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (file: string, o: { model?: string; sae?: string; db?: string; json: boolean }) => {
        const store = openStore(o.db);
        try {
          const r = await importLabels(store, file, { model: o.model, sae: o.sae });
          if (o.json) printJson(r);
          else {
            process.stdout.write(`imported ${r.imported} labels (${r.sets.map((s) => `${s.modelId} / ${s.saeId}: ${s.labels}`).join('; ')}); ${r.skipped.length} rows skipped\n`);
            for (const s of r.skipped.slice(0, 20)) process.stdout.write(`  line ${s.line}: ${s.reason}\n`);
          }
        } finally {
          store.close();
        }
      }),
    );
  labels
    .command('show')
    .description('look up labels of some latents')
    .requiredOption('--model <id>', 'model id')
    .requiredOption('--sae <id>', 'SAE source id')
    .requiredOption('--latents <list>', 'comma-separated latent indices')
    .option('--db <path>', 'database file')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { model: string; sae: string; latents: string; db?: string; json: boolean }) => {
        const idx = o.latents.split(',').map((s) => {
          const n = Number(s.trim());
          if (!Number.isInteger(n) || n < 0) throw new InputError({ field: '--latents', expected: 'comma-separated integers ≥ 0', got: `"${s}"` });
          return n;
        });
        const store = openStore(o.db);
        try {
          const found = store.labels.lookup(o.model, o.sae, idx);
          const out = idx.map((i) => ({ latent: i, labels: found.get(i) ?? [] }));
          if (o.json) printJson(out);
          else for (const r of out) process.stdout.write(`${r.latent}\t${r.labels[0]?.description ?? '(no label)'}\n`);
        } finally {
          store.close();
        }
      }),
    );
  labels
    .command('list')
    .description('label sets in the database')
    .option('--db <path>', 'database file')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { db?: string; json: boolean }) => {
        const store = openStore(o.db);
        try {
          const sets = store.labels.sets();
          if (o.json) printJson(sets);
          else for (const s of sets) process.stdout.write(`${s.modelId}\t${s.saeId}\t${s.latents} latents\t${s.labels} labels\n`);
        } finally {
          store.close();
        }
      }),
    );
}
