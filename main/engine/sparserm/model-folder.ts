/**
 * The self-contained reward-model folder: manifest.json, head.onnx (z → score, runs in any ONNX Runtime),
 * head.npz (the same weights for the TypeScript explainer), curve.json. Written to a temp folder and renamed into
 * place, so a crash never leaves a half-written model that looks complete.
 */
import fs from 'node:fs';
import path from 'node:path';

import { InputError } from '../errors';
import { readNpz, writeNpz } from '../formats/npz';
import { saveModel } from '../onnx/graph-builder';
import type { EpochStats, HeadWeights } from './head';
import { buildHeadModel } from './head-onnx';
import { RewardModelManifest } from './manifest';
import { zodIssueDetails } from '../zod-issue';

export interface RewardModel {
  dir: string;
  manifest: RewardModelManifest;
  head: HeadWeights;
  /** [2K × hiddenSize] decoder rows of the selected latents, in manifest.selected order. */
  directions: Float32Array;
  curve: EpochStats[];
}

export async function writeRewardModel(dir: string, model: Omit<RewardModel, 'dir'>): Promise<void> {
  const abs = path.resolve(dir);
  if (fs.existsSync(abs) && fs.readdirSync(abs).length > 0) {
    throw new InputError({ file: abs, expected: 'a new or empty folder for the reward model (refusing to overwrite)', got: 'a non-empty folder' });
  }
  const parent = path.dirname(abs);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(abs)}.tmp-`));
  try {
    const { manifest, head, directions, curve } = model;
    RewardModelManifest.parse(manifest);
    saveModel(
      path.join(tmp, 'head.onnx'),
      buildHeadModel(directions, manifest.backbone.hiddenSize, head, { sparserm_model_id: manifest.id, latents: manifest.selected.map((s) => s.index).join(',') }),
    );
    await writeNpz(path.join(tmp, 'head.npz'), {
      W1: { shape: [head.hidden, head.inDim], data: head.W1 },
      b1: { shape: [head.hidden], data: head.b1 },
      w2: { shape: [head.hidden], data: head.w2 },
      b2: { shape: [1], data: Float32Array.of(head.b2) },
      mean: { shape: [head.inDim], data: head.mean },
      std: { shape: [head.inDim], data: head.std },
      directions: { shape: [head.inDim, manifest.backbone.hiddenSize], data: directions },
    });
    fs.writeFileSync(path.join(tmp, 'curve.json'), JSON.stringify(curve, null, 1) + '\n');
    fs.writeFileSync(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    if (fs.existsSync(abs)) fs.rmdirSync(abs);
    fs.renameSync(tmp, abs);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

export async function readRewardModel(dir: string): Promise<RewardModel> {
  const abs = path.resolve(dir);
  const mf = path.join(abs, 'manifest.json');
  if (!fs.existsSync(mf)) throw new InputError({ file: abs, expected: 'a reward-model folder with manifest.json (from `sparserm train`)', got: 'no manifest.json' });
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(mf, 'utf8'));
  } catch (err) {
    throw new InputError({ file: mf, expected: 'valid JSON', got: (err as Error).message }, err);
  }
  const parsed = RewardModelManifest.safeParse(raw);
  if (!parsed.success) throw new InputError(zodIssueDetails(parsed.error, raw, mf));
  const manifest = parsed.data;
  const npz = await readNpz(path.join(abs, 'head.npz'));
  const get = (name: string, shape: number[]): Float32Array => {
    const a = npz.get(name);
    if (!a || !(a.data instanceof Float32Array) || a.shape.join() !== shape.join()) {
      throw new InputError({ file: path.join(abs, 'head.npz'), tensor: name, expected: `float32 [${shape.join(', ')}] (from manifest.json)`, got: a ? `${a.dtype} [${a.shape.join(', ')}]` : 'missing' });
    }
    return a.data;
  };
  const { inDim, hidden } = manifest.head;
  if (manifest.selected.length !== inDim) throw new InputError({ file: mf, field: 'selected', expected: `${inDim} latents (head.inDim)`, got: String(manifest.selected.length) });
  const head: HeadWeights = {
    inDim,
    hidden,
    W1: get('W1', [hidden, inDim]),
    b1: get('b1', [hidden]),
    w2: get('w2', [hidden]),
    b2: get('b2', [1])[0],
    mean: get('mean', [inDim]),
    std: get('std', [inDim]),
  };
  const directions = get('directions', [inDim, manifest.backbone.hiddenSize]);
  const curveFile = path.join(abs, 'curve.json');
  const curve = fs.existsSync(curveFile) ? (JSON.parse(fs.readFileSync(curveFile, 'utf8')) as EpochStats[]) : [];
  return { dir: abs, manifest, head, directions, curve };
}
