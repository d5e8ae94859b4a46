import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';

import { CancelledError, InputError, throwIfAborted } from '../errors';
import { projectRoot } from '../paths';
import type { EffectiveDecision, ExportPair, Message, Store } from '../store';
import { freshPromptGroups } from '../sparserm/dedupe';
import { AtomicFile, OutputExistsError, removeStaleTempFiles } from './atomic';
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
  /**
   * Keep one pair per near-duplicate prompt group (the first exported one in id order); the others are left out
   * (and written to the dropped file when there is one). Groups are computed first when missing or stale.
   */
  onePerGroup?: boolean;
  /** Replace output files that already exist (CLI `--force`; the UI asks first). Default false: refuse. */
  overwrite?: boolean;
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
  /** onePerGroup: pairs left out because a pair of the same near-duplicate prompt group was exported. */
  groupDuplicates?: number;
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

/** The lineage of a generated dataset for the provenance sidecar (null for imported datasets). */
function lineageProvenance(store: Store, datasetId: number) {
  const l = store.generations.lineage(datasetId);
  if (!l) return null;
  const parent = l.parentDatasetId !== null ? store.datasets.list().find((d) => d.id === l.parentDatasetId) : undefined;
  return { round: l.round, policy: l.policyLabel, policy_hash: l.policy, recipe: l.recipe, recipe_params: l.recipeParams, generation_run: l.generationRunId, parent_dataset: parent ? { id: parent.id, name: parent.name } : null, prompts: l.promptsSource };
}

/**
 * Writes the curated dataset as TRL JSONL (only kept pairs, swaps applied, id order), atomically, with a provenance
 * sidecar `<out>.provenance.json`, and optionally the left-out pairs.
 */
export async function exportDataset(store: Store, opts: ExportOptions): Promise<ExportResult> {
  const format = opts.format ?? 'standard';
  if (format !== 'standard' && format !== 'conversational') throw new InputError({ field: 'format', expected: 'standard or conversational', got: String(format) });
  const ds = store.datasets.resolve(opts.dataset);
  const targets = checkExportTargets(store, opts);
  const out = targets.out;
  const droppedPath = targets.dropped;
  // Temp files of killed exports in these folders (writer process gone) are removed now.
  for (const dir of new Set([path.dirname(out), ...(droppedPath ? [path.dirname(droppedPath)] : [])])) removeStaleTempFiles(dir);

  const include = new Set<EffectiveDecision>(['keep', 'swap']);
  if (opts.includeUndecided) include.add('undecided');
  if (opts.includeUncertain) include.add('uncertain');

  const total = store.pairs.count({ datasetId: ds.id });
  const counts: ExportCounts = { total, exported: 0, kept: 0, swapped: 0, dropped: 0, uncertain: 0, undecided: 0, overridden: 0, humanDecided: 0 };
  const groups = opts.onePerGroup ? freshPromptGroups(store, ds.id) : null;
  const exportedGroups = new Set<number>();
  if (groups) counts.groupDuplicates = 0;
  const main = new AtomicFile(out);
  const side = droppedPath ? new AtomicFile(droppedPath) : null;
  const prov = new AtomicFile(targets.provenance);
  const hash = createHash('sha256');
  try {
    throwIfAborted(opts.signal);
    let done = 0;
    for (const p of store.pairs.iterateForExport(ds.id)) {
      if (p.humanDecision !== null) counts.humanDecided++;
      if (overridden(p)) counts.overridden++;
      const bucket: keyof ExportCounts = p.effective === 'swap' ? 'swapped' : p.effective === 'keep' ? 'kept' : p.effective === 'drop' ? 'dropped' : p.effective;
      counts[bucket]++;
      const group = groups?.map.get(p.id);
      const groupDuplicate = group !== undefined && include.has(p.effective) && exportedGroups.has(group);
      if (groupDuplicate) counts.groupDuplicates!++;
      if (include.has(p.effective) && !groupDuplicate) {
        if (group !== undefined) exportedGroups.add(group);
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
            ...(groupDuplicate ? { near_duplicate_of_group: group } : {}),
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
      // Generated datasets (issue 12): which round, policy, recipe and generation run made the pairs.
      lineage: lineageProvenance(store, ds.id),
      selection: [...include],
      one_per_group: groups ? { scheme: groups.scheme, threshold: groups.threshold, left_out: counts.groupDuplicates } : null,
      format,
      output: { file: path.basename(out), sha256, lines: counts.exported },
      dropped_file: droppedPath ? path.basename(droppedPath) : null,
      counts,
    };
    prov.write(JSON.stringify(provenance, null, 2) + '\n');
    throwIfAborted(opts.signal);
    // Data first: a crash between renames can leave an older sidecar, never a half-written data file.
    const overwrite = { overwrite: !!opts.overwrite };
    main.commit(overwrite);
    side?.commit(overwrite);
    prov.commit(overwrite);
    opts.onProgress?.({ done: total, total });
    return { out, provenance: prov.target, dropped: droppedPath, format, sha256, counts };
  } catch (err) {
    main.abort();
    side?.abort();
    prov.abort();
    throw err;
  }
}

/** One file an export writes, with the option it comes from (for messages). */
interface Target {
  role: string;
  path: string;
}

/** Real path of an existing file (symlinks resolved), else the real path of its folder + its name. */
function realTarget(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch {
    try {
      return path.join(fs.realpathSync.native(path.dirname(p)), path.basename(p));
    } catch {
      return p;
    }
  }
}

/** Identity of a path: device + inode when it exists (catches symlinks, hard links and case-insensitive names). */
function identity(p: string): string | null {
  try {
    const st = fs.statSync(p);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/**
 * Whether names in `dir` are compared without case (macOS and Windows defaults): the folder's own path with its last
 * letters' case swapped reaches the same folder. A path without letters is taken as case-sensitive.
 */
function caseInsensitiveDir(dir: string): boolean {
  const parts = dir.split(path.sep);
  for (let i = parts.length - 1; i > 0; i--) {
    const swapped = [...parts[i]!].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
    if (swapped === parts[i]) continue;
    const alt = [...parts.slice(0, i), swapped, ...parts.slice(i + 1)].join(path.sep);
    const a = identity(parts.slice(0, i + 1).join(path.sep));
    return a !== null && identity(alt) === a;
  }
  return false;
}

/** A key under which two paths naming the same file (now or once written) compare equal. */
function fileKey(p: string): string {
  const id = identity(p);
  if (id) return `id:${id}`;
  const real = realTarget(p);
  const dir = path.dirname(real);
  return `name:${dir}${path.sep}${caseInsensitiveDir(dir) ? path.basename(real).toLowerCase() : path.basename(real)}`;
}

/**
 * Validates where an export will write, before anything is written: the folder exists; no output is the database
 * in use or one of its -wal/-shm/-journal files; the data file, its provenance sidecar and the dropped file are three
 * different files (compared by real path and inode: symlinks, hard links and case-insensitive names included); an
 * existing one is a regular file and is replaced only with `overwrite`. Returns the real paths to write.
 */
export function checkExportTargets(store: Pick<Store, 'path'>, opts: Pick<ExportOptions, 'out' | 'dropped' | 'overwrite'>): { out: string; provenance: string; dropped: string | null } {
  const want = (p: string): string => {
    const abs = path.resolve(p);
    const dir = path.dirname(abs);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError({ file: abs, expected: 'an output path in an existing folder' });
    return realTarget(abs);
  };
  const out = want(opts.out);
  const targets: Target[] = [
    { role: '--out', path: out },
    { role: 'the provenance sidecar of --out', path: out + '.provenance.json' },
  ];
  if (opts.dropped) targets.push({ role: '--dropped', path: want(opts.dropped) });

  const protectedFiles: Target[] = [];
  if (store.path && store.path !== ':memory:') {
    const db = path.resolve(store.path);
    for (const suffix of ['', '-wal', '-shm', '-journal']) protectedFiles.push({ role: suffix ? `the database's ${suffix} file` : 'the database in use', path: db + suffix });
  }
  const protectedKeys = new Map(protectedFiles.map((f) => [fileKey(f.path), f] as const));
  const seen = new Map<string, Target>();
  for (const t of targets) {
    const key = fileKey(t.path);
    const db = protectedKeys.get(key);
    if (db) {
      throw new InputError({ file: t.path, field: t.role, expected: 'an output file that is not the database (or its -wal/-shm/-journal files)', got: `${db.role} (${db.path})` });
    }
    const twice = seen.get(key);
    if (twice) throw new InputError({ file: t.path, field: t.role, expected: `a different file than ${twice.role} (${twice.path})`, got: 'the same file twice' });
    seen.set(key, t);
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(t.path);
    } catch {
      /* does not exist yet */
    }
    if (st && !st.isFile()) throw new InputError({ file: t.path, field: t.role, expected: 'a file path', got: st.isDirectory() ? 'a folder' : 'a special file' });
  }
  if (!opts.overwrite) {
    const existing = targets.filter((t) => fs.existsSync(t.path)).map((t) => t.path);
    if (existing.length) throw new OutputExistsError(existing);
  }
  return { out, provenance: targets[1]!.path, dropped: opts.dropped ? targets[2]!.path : null };
}
