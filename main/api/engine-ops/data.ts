/** Data in and out: the import and export jobs (engine/data), the export preview, latent labels, job result views. */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../engine/errors';
import { registerDataJobs, checkExportTargets, exportRecord, importLabels, toolVersion, FORMATS, type ImportResult, type ExportResult } from '../../engine/data';
import { DEMO_LABEL } from '../../engine/demo/kit';
import type { ImportReport } from '../contract';
import type { EngineContext, EngineOps } from '../engine-ops';
import { modelRows } from './shared';

export function createDataOps(ctx: EngineContext): Pick<EngineOps, 'startImport' | 'exportPreview' | 'startExport' | 'importLabels' | 'resultView'> {
  const { store, runner } = ctx;
  const { requireSae } = modelRows(store);

  function importReport(r: ImportResult): ImportReport {
    return {
      datasetId: String(r.datasetId),
      format: r.format,
      imported: r.imported,
      skipped: r.skippedTotal,
      duplicates: r.duplicates,
      problems: [...r.skipped.map((s) => ({ line: s.line, message: s.reason })), ...r.notes.map((n) => ({ line: n.line, message: n.note }))].slice(0, 1000),
    };
  }
  // 'import' and 'export' jobs belong to the data area; the API only starts them and presents their results.
  registerDataJobs(runner);

  return {
    startImport(i) {
      if (!fs.existsSync(i.path)) throw new InputError({ file: i.path, expected: 'an existing file (a path on the machine running SparseRM Studio)' });
      const format = i.format && i.format !== 'auto' ? i.format : 'auto';
      if (format !== 'auto' && !(FORMATS as readonly string[]).includes(format)) throw new InputError({ field: 'format', expected: `auto or one of ${FORMATS.join(', ')}`, got: format });
      const dataset = i.name?.trim() || path.basename(i.path).replace(/(\.jsonl?|\.json|\.gz)+$/i, '');
      return runner.start('import', { file: path.resolve(i.path), dataset, format, ...(i.maxLineBytes ? { maxLineBytes: i.maxLineBytes } : {}) }).id;
    },
    async exportPreview({ datasetId, format, lines, include }) {
      const ds = store.datasets.get(datasetId);
      const sum = store.datasets.summary(datasetId);
      const selection: ('keep' | 'swap' | 'uncertain' | 'undecided')[] = ['keep', 'swap', ...(include.uncertain ? ['uncertain' as const] : []), ...(include.undecided ? ['undecided' as const] : [])];
      const out: string[] = [];
      for (const p of store.pairs.iterate({ datasetId, effective: selection }, { batch: lines })) {
        out.push(JSON.stringify(exportRecord(p, format, p.effective === 'swap')));
        if (out.length >= lines) break;
      }
      const exported = selection.reduce((n, k) => n + sum.counts[k], 0);
      const filter = store.runs.currentFilter(datasetId);
      const scored = filter ? store.runs.scoreCount(filter.runId) : 0;
      const run = filter ? store.runs.get(filter.runId) : undefined;
      const rm = run ? store.models.rewardModel(run.rewardModelId) : undefined;
      return {
        datasetName: ds.name,
        lines: out,
        counts: {
          total: sum.pairs,
          kept: exported,
          // Only pairs decided or judged drop: uncertain / undecided / unscored pairs are reported as such.
          dropped: sum.counts.drop,
          swapped: sum.counts.swap,
          uncertain: sum.counts.uncertain,
          undecided: sum.counts.undecided,
          unscored: Math.max(0, sum.pairs - scored),
          overrides: store.pairs.count({ datasetId, disagrees: true }),
        },
        // The same facts the sidecar will hold (written by the export job with the file's hash and final counts).
        provenance: {
          tool: { name: 'SparseRM Studio', version: toolVersion() },
          dataset: { id: ds.id, name: ds.name, demo: ds.demo },
          sources: store.datasets.imports(datasetId).map((i) => ({ file: i.file, sha256: i.fileSha256, format: i.format, imported: i.imported })),
          reward_model: rm ? { id: rm.id, name: rm.name, manifest_hash: rm.manifestHash, layer: rm.layer, demo: rm.demo, ...(rm.demo ? { label: DEMO_LABEL } : {}) } : null,
          rule: filter ? { name: filter.rule, threshold: filter.threshold, band: filter.band } : null,
          selection,
          format,
          curator_decisions: sum.humanDecided,
        },
      };
    },
    startExport({ datasetId, format, path: out, include, droppedPath, overwrite, allowEmpty, onePerGroup }) {
      const dir = path.dirname(path.resolve(out));
      if (!fs.existsSync(dir)) throw new InputError({ file: out, field: 'path', expected: 'an output path in an existing folder' });
      if (!allowEmpty) {
        const sum = store.datasets.summary(datasetId);
        const n = sum.counts.keep + sum.counts.swap + (include.uncertain ? sum.counts.uncertain : 0) + (include.undecided ? sum.counts.undecided : 0);
        // A 0-pair export is almost always a wrong dataset or selection: refused unless asked for explicitly.
        if (n === 0) throw new InputError({ field: 'include', expected: `at least one pair to export (dataset "${store.datasets.get(datasetId).name}" has ${sum.pairs} pairs, none kept or swapped by this selection); include uncertain/undecided pairs or force an empty export`, got: '0 pairs' });
      }
      // Refused now, before a job exists: the database as output, the same file twice, an existing file (kind 'exists').
      checkExportTargets(store, { out, dropped: droppedPath, overwrite });
      return runner.start('export', {
        overwrite: !!overwrite,
        dataset: datasetId,
        out: path.resolve(out),
        format,
        includeUncertain: include.uncertain,
        includeUndecided: include.undecided,
        ...(droppedPath ? { dropped: path.resolve(droppedPath) } : {}),
        ...(onePerGroup ? { onePerGroup: true } : {}),
      }).id;
    },
    async importLabels({ path: file, saeId }) {
      const sae = saeId ? requireSae(saeId) : undefined;
      const np = sae?.metadata.neuronpedia as { modelId?: string; saeId?: string } | undefined;
      const r = await importLabels(store, file, { ...(np?.modelId ? { model: np.modelId } : {}), ...(np?.saeId ? { sae: np.saeId } : {}) });
      // Remember which label set describes this SAE, so models trained on it (and their explanations) show labels.
      if (sae && !np && r.sets.length === 1) {
        store.models.upsertSae({ ...sae, metadata: { ...sae.metadata, neuronpedia: { modelId: r.sets[0].modelId, saeId: r.sets[0].saeId } } });
      }
      return { imported: r.imported };
    },
    resultView(kind, result) {
      if (result === null || result === undefined) return null;
      if (kind === 'import') return importReport(result as ImportResult);
      if (kind === 'export') {
        const r = result as ExportResult;
        return { path: r.out, provenance: r.provenance, sha256: r.sha256, counts: r.counts };
      }
      return result;
    },
  };
}
