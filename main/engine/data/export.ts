import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';

import { CancelledError, InputError, throwIfAborted } from '../errors';
import { projectRoot } from '../paths';
import type { EffectiveDecision, ExportPair, Message, Store } from '../store';
import { AtomicFile } from './atomic';
import { textToPromptMessages } from './formats';

export type ExportFormat = 'standard' | 'conversational';

export interface ExportOptions {
  dataset: string | number;
  out: string;
  format?: ExportFormat;
  /** Also write the pairs left out (dropped, uncertain, undecided) with their decision, for audit. */
  dropped?: string;
  /** Also export pairs with no verdict and no decision (e.g. a dataset that was never scored). Default false. */
  includeUndecided?: boolean;
  /** Also export pairs the rule left uncertain and nobody reviewed. Default false. */
  includeUncertain?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface ExportCounts {
  total: number;
  exported: number;
  kept: number;
  swapped: number;
  dropped: number;
  uncertain: number;
  undecided: number;
  /** Pairs whose human decision differs from a keep/drop verdict (a swap of a dropped pair counts). */
  overridden: number;
  /** Pairs with any human decision. */
  humanDecided: number;
}

export interface ExportResult {
  out: string;
  provenance: string;
  dropped: string | null;
  format: ExportFormat;
  sha256: string;
  counts: ExportCounts;
}

export function toolVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The exported record of a pair (swap applied when the decision is swap). Keys exactly as TRL expects. */
export function exportRecord(p: Pick<ExportPair, 'prompt' | 'chosen' | 'rejected' | 'promptMessages' | 'chosenMessages' | 'rejectedMessages'>, format: ExportFormat, swap: boolean): Record<string, unknown> {
  if (format === 'standard') {
    return swap ? { prompt: p.prompt, chosen: p.rejected, rejected: p.chosen } : { prompt: p.prompt, chosen: p.chosen, rejected: p.rejected };
  }
  const prompt: Message[] = p.promptMessages ?? textToPromptMessages(p.prompt);
  const chosen: Message[] = p.chosenMessages ?? [{ role: 'assistant', content: p.chosen }];
  const rejected: Message[] = p.rejectedMessages ?? [{ role: 'assistant', content: p.rejected }];
  return swap ? { prompt, chosen: rejected, rejected: chosen } : { prompt, chosen, rejected };
}

/** The curator changed what the rule would have done (a swap of a dropped pair exports it: an override). */
function overridden(p: ExportPair): boolean {
  if (p.humanDecision === null || p.autoVerdict === null || p.autoVerdict === 'uncertain') return false;
  return p.humanDecision !== p.autoVerdict;
}

/**
 * Writes the curated dataset as TRL JSONL (only kept pairs, swaps applied, id order), atomically, with a provenance
 * sidecar `<out>.provenance.json`, and optionally the left-out pairs.
 */
export async function exportDataset(store: Store, opts: ExportOptions): Promise<ExportResult> {
  const format = opts.format ?? 'standard';
  if (format !== 'standard' && format !== 'conversational') throw new InputError({ field: 'format', expected: 'standard or conversational', got: String(format) });
  const ds = store.datasets.resolve(opts.dataset);
  const out = path.resolve(opts.out);
  const outDir = path.dirname(out);
  if (!fs.existsSync(outDir) || !fs.statSync(outDir).isDirectory()) throw new InputError({ file: out, expected: 'an output path in an existing folder' });
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new InputError({ file: out, expected: 'a file path', got: 'a folder' });
  const droppedPath = opts.dropped ? path.resolve(opts.dropped) : null;
  if (droppedPath && droppedPath === out) throw new InputError({ field: 'dropped', expected: 'a different file than --out' });

  const include = new Set<EffectiveDecision>(['keep', 'swap']);
  if (opts.includeUndecided) include.add('undecided');
  if (opts.includeUncertain) include.add('uncertain');

  const total = store.pairs.count({ datasetId: ds.id });
  const counts: ExportCounts = { total, exported: 0, kept: 0, swapped: 0, dropped: 0, uncertain: 0, undecided: 0, overridden: 0, humanDecided: 0 };
  const main = new AtomicFile(out);
  const side = droppedPath ? new AtomicFile(droppedPath) : null;
  const prov = new AtomicFile(out + '.provenance.json');
  const hash = createHash('sha256');
  try {
    throwIfAborted(opts.signal);
    let done = 0;
    for (const p of store.pairs.iterateForExport(ds.id)) {
      if (p.humanDecision !== null) counts.humanDecided++;
      if (overridden(p)) counts.overridden++;
      const bucket: keyof ExportCounts = p.effective === 'swap' ? 'swapped' : p.effective === 'keep' ? 'kept' : p.effective === 'drop' ? 'dropped' : p.effective;
      counts[bucket]++;
      if (include.has(p.effective)) {
        const line = JSON.stringify(exportRecord(p, format, p.effective === 'swap')) + '\n';
        hash.update(line);
        main.write(line);
        counts.exported++;
      } else if (side) {
        side.write(
          JSON.stringify({
            ...exportRecord(p, format, false),
            pair_id: p.id,
            external_id: p.externalId,
            decision: p.effective,
            auto_verdict: p.autoVerdict,
            human_decision: p.humanDecision,
            margin: p.margin,
            note: p.note,
          }) + '\n',
        );
      }
      if (++done % 2000 === 0) {
        opts.onProgress?.({ done, total });
        await new Promise<void>((r) => setImmediate(r));
        if (opts.signal?.aborted) throw new CancelledError();
      }
    }
    const sha256 = hash.digest('hex');
    const filter = store.runs.currentFilter(ds.id);
    const run = filter ? store.runs.get(filter.runId) : null;
    const rm = run ? store.models.rewardModel(run.rewardModelId) : undefined;
    const provenance = {
      tool: { name: 'SparseRM Studio', version: toolVersion() },
      created: new Date().toISOString(),
      dataset: { id: ds.id, name: ds.name },
      sources: store.datasets.imports(ds.id).map((i) => ({ file: i.file, sha256: i.fileSha256, bytes: i.fileBytes, format: i.format, imported: i.imported, duplicates: i.duplicates, skipped: i.skipped, imported_at: i.finishedAt })),
      reward_model: rm ? { id: rm.id, name: rm.name, manifest_hash: rm.manifestHash, backbone_id: rm.backboneId, sae_id: rm.saeId, layer: rm.layer, demo: rm.demo } : null,
      scoring_run: run ? { id: run.id, created: run.createdAt, status: run.status } : null,
      rule: filter ? { name: filter.rule, threshold: filter.threshold, band: filter.band, applied: filter.createdAt } : null,
      selection: [...include],
      format,
      output: { file: path.basename(out), sha256, lines: counts.exported },
      dropped_file: droppedPath ? path.basename(droppedPath) : null,
      counts,
    };
    prov.write(JSON.stringify(provenance, null, 2) + '\n');
    throwIfAborted(opts.signal);
    // Data first: a crash between renames can leave an older sidecar, never a half-written data file.
    main.commit();
    side?.commit();
    prov.commit();
    opts.onProgress?.({ done: total, total });
    return { out, provenance: prov.target, dropped: droppedPath, format, sha256, counts };
  } catch (err) {
    main.abort();
    side?.abort();
    prov.abort();
    throw err;
  }
}
