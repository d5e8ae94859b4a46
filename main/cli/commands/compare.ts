import fs from 'node:fs';

import type { Command } from 'commander';

import { compareModels, latentLabels, latestRunOf } from '../../engine/sparserm/compare-models';
import { readRewardModel, registerRewardModel, scoreDatasetIntoStore } from '../../engine/sparserm/service';
import { openStore, type Store } from '../../engine/store';
import { action, printJson, progress } from '../output';
import { parseEp } from './hidden';
import { parseIntOpt, progressPrinter } from './train';

interface CompareOpts {
  dataset: string;
  a: string;
  b: string;
  db?: string;
  top?: string;
  limit?: string;
  ep?: string;
  json?: boolean;
}

/** A registered reward-model id, or a reward-model folder (registered now). */
async function resolveModel(store: Store, v: string): Promise<string> {
  if (store.models.rewardModel(v)) return v;
  if (fs.existsSync(v) && fs.statSync(v).isDirectory()) {
    const m = await readRewardModel(v);
    if (!store.models.rewardModel(m.manifest.id)) registerRewardModel(store, m.dir, m.manifest);
    return m.manifest.id;
  }
  return store.models.requireRewardModel(v).id; // InputError naming the id
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function register(program: Command): void {
  program
    .command('compare')
    .description('compare two reward models on a dataset: agreement (same verdict) with n and 95 % Wilson interval, Pearson / Spearman of the margins, the pairs where they disagree, the latents whose contributions differ most')
    .requiredOption('--dataset <name>', 'dataset (both models score it first when they have not yet)')
    .requiredOption('--a <model>', 'reward model A: a registered id or a reward-model folder')
    .requiredOption('--b <model>', 'reward model B: a registered id or a reward-model folder')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--top <n>', 'latents listed', '15')
    .option('--limit <n>', 'disagreements listed (largest |margin A − margin B| first)', '20')
    .option('--ep <ep>', 'execution provider when a model must score the dataset first: auto | cpu | cuda | webgpu', 'auto')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: CompareOpts) => {
        const store = openStore(o.db);
        try {
          const ds = store.datasets.resolve(o.dataset);
          const a = await resolveModel(store, o.a);
          const b = await resolveModel(store, o.b);
          for (const m of [a, b]) {
            if (latestRunOf(store, ds.id, m) !== undefined) continue;
            progress(`${m} has not scored "${ds.name}": scoring it first`);
            await scoreDatasetIntoStore({ store, dataset: ds.id, modelDir: store.models.requireRewardModel(m).folder, ep: parseEp(o.ep), onProgress: progressPrinter(), onWarning: (w) => progress(`warning: ${w}`) });
          }
          const c = compareModels({ store, datasetId: ds.id, modelA: a, modelB: b, topLatents: parseIntOpt('--top', o.top, 1), disagreementLimit: parseIntOpt('--limit', o.limit, 0) });
          const labels = latentLabels(store, a, [...c.latents, ...c.perModel.a].map((l) => l.latent));
          const labelsB = latentLabels(store, b, [...c.latents, ...c.perModel.b].map((l) => l.latent));
          if (o.json) {
            printJson({ dataset: ds.name, ...c, agreement: Number.isFinite(c.agreement) ? c.agreement : null, pearson: Number.isFinite(c.pearson) ? c.pearson : null, spearman: Number.isFinite(c.spearman) ? c.spearman : null, labels: Object.fromEntries([...labelsB, ...labels]) });
            return;
          }
          const out = (s: string) => process.stdout.write(s + '\n');
          out(`dataset "${ds.name}": ${c.n} pairs scored by both (run ${c.runA} of ${a}, run ${c.runB} of ${b})`);
          if (c.n === 0) return;
          out(`agreement (same verdict, margin ≥ 0 = keep): ${c.agree}/${c.n} = ${pct(c.agreement)} (95 % CI ${pct(c.ci95[0])}–${pct(c.ci95[1])})`);
          out(`  A keep & B keep ${c.table.keepKeep}, A keep & B drop ${c.table.keepDrop}, A drop & B keep ${c.table.dropKeep}, A drop & B drop ${c.table.dropDrop}`);
          out(`margins: Pearson ${c.pearson.toFixed(3)}, Spearman ${c.spearman.toFixed(3)}`);
          out(`disagreements: ${c.disagreements.total}${c.disagreements.items.length ? ' (largest |margin A − margin B| first)' : ''}`);
          for (const d of c.disagreements.items) out(`  pair ${d.pairId}: margin A ${d.marginA.toFixed(4)}, B ${d.marginB.toFixed(4)}`);
          if (c.sameSae) {
            out(`latents whose contributions differ most (same SAE; mean |contribution A − contribution B| over ${c.latentSource}):`);
            for (const l of c.latents) out(`  latent ${l.latent}${labels.get(l.latent) ? ` (${labels.get(l.latent)})` : ''}: ${l.meanAbsDiff.toFixed(4)} (mean A ${l.meanA.toFixed(4)}, B ${l.meanB.toFixed(4)})`);
          } else {
            out(`the models read different SAEs (${c.saeA ?? 'unknown'} vs ${c.saeB ?? 'unknown'}): their latents are not comparable one to one; each model's top latents by mean |contribution|:`);
            for (const [name, ls, lab] of [['A', c.perModel.a, labels], ['B', c.perModel.b, labelsB]] as const) {
              out(`  ${name}: ${ls.map((l) => `${l.latent}${lab.get(l.latent) ? ` (${lab.get(l.latent)})` : ''} ${l.meanAbs.toFixed(4)}`).join(', ') || 'none stored'}`);
            }
          }
        } finally {
          store.close();
        }
      }),
    );
}
