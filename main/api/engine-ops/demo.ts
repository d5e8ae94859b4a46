/** The demo kit: its status and the job that installs it (models, labels and the demo dataset). */
import { ensureDemoKit, readKit, DEMO_LABEL } from '../../engine/demo/kit';
import { ensureDemoDataset, ensureDemoLabels, ensureDemoModels } from '../../engine/demo/demo-store';
import { demoKitDir } from '../../engine/paths';
import type { EngineContext, EngineOps } from '../engine-ops';

export function createDemoOps(ctx: EngineContext): Pick<EngineOps, 'demoStatus' | 'startInstallDemo'> {
  const { store, runner } = ctx;
  // The same dataset and Models rows as `sparserm demo` (demo module): "demo-truthfulqa", reused, never duplicated.
  runner.define('demo', async (_p: unknown, job) => {
    const kit = await ensureDemoKit({ signal: job.signal, onProgress: (p) => job.progress(p.done, p.total, p.phase) });
    await ensureDemoLabels(store, kit);
    const { checkpoint, sae } = await ensureDemoModels(store, kit);
    const dataset = await ensureDemoDataset(store, kit.dataset, {
      signal: job.signal,
      onProgress: (x) => job.progress(x.bytesRead, x.totalBytes, `${x.imported.toLocaleString('en')} pairs`),
    });
    return { checkpointId: checkpoint.id, saeId: sae.id, layer: kit.layer, datasetId: String(dataset.datasetId), dataset, label: DEMO_LABEL };
  });

  return {
    async demoStatus() {
      const kit = readKit();
      return { installed: !!kit, path: kit?.dir ?? demoKitDir, datasetPath: kit?.dataset ?? null };
    },
    startInstallDemo() {
      return runner.start('demo', {}).id;
    },
  };
}
