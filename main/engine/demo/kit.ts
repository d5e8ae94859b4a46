import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

import { openBackbone } from '../backbone';
import { loadTokenizer } from '../backbone/tokenizer';
import { throwIfAborted } from '../errors';
import { openSafetensors } from '../formats/safetensors';
import { writeNpz } from '../formats/npz';
import { dataHome, demoKitDir, projectRoot } from '../paths';
import { DEMO_MODEL_SHAPE, writeDemoCheckpoint } from './checkpoint-builder';
import { demoPairsPath, readDemoPairs, tokenizerCorpus } from './demo-data';
import { buildDemoLabels } from './labels-builder';
import { buildDemoSae } from './sae-builder';
import { buildDemoTokenizer } from './tokenizer-builder';

/**
 * The demo kit: everything a fresh machine needs to run every screen and command without gated downloads —
 * a tiny random-weight Gemma-2 checkpoint (HF layout, byte-level BPE tokenizer, the real IT chat template), a
 * matching Gemma Scope-layout SAE calibrated on that backbone, honest latent labels, and the TruthfulQA pairs.
 * Generated deterministically on first use (same bytes every time), written to a temp folder and renamed into
 * place so a crash never leaves half a kit.
 */

/** Bump when anything generated changes: an older kit on disk is then regenerated. */
export const DEMO_KIT_VERSION = 2;
export const DEMO_LABEL = 'demo (random weights)';
export const DEMO_LAYER = 3;
export const DEMO_D_SAE = 256;
export const DEMO_VOCAB = 1024;
const SEED = 20251111;
/** Pairs whose chosen + rejected responses calibrate the SAE and generate the labels. */
const CALIBRATION_PAIRS = 300;

const KitJson = z.object({
  label: z.string(),
  version: z.number().int(),
  checkpoint: z.string(),
  sae: z.string(),
  labels: z.string(),
  layer: z.number().int(),
  dataset: z.string(),
  modelId: z.string(),
  saeId: z.string(),
  dSae: z.number().int(),
  meanL0Fraction: z.number(),
  /** Every generated file with its sha256: a kit whose files are missing or altered is regenerated. */
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
});
export type KitJson = z.infer<typeof KitJson>;

export interface DemoKit {
  /** "demo (random weights)": every UI/CLI place that uses the kit shows it. */
  label: string;
  version: number;
  dir: string;
  /** Absolute paths. */
  checkpoint: string;
  sae: string;
  labels: string;
  dataset: string;
  layer: number;
  /** Neuronpedia-style ids the labels are keyed by. */
  modelId: string;
  saeId: string;
  dSae: number;
  meanL0Fraction: number;
}

export interface DemoProgress {
  phase: string;
  done: number;
  total: number;
}

export interface EnsureDemoKitOptions {
  /** Where the kit lives (default models/demo in the project). */
  dir?: string;
  /** Regenerate even if a valid kit is present. */
  force?: boolean;
  onProgress?: (p: DemoProgress) => void;
  signal?: AbortSignal;
}

/** Returns the kit, generating it first if it is missing, incomplete or from another kit version. */
export async function ensureDemoKit(opts: EnsureDemoKitOptions = {}): Promise<DemoKit> {
  const dir = path.resolve(opts.dir ?? defaultKitDir());
  if (!opts.force) {
    const existing = readKit(dir);
    if (existing) return existing;
  }
  const parent = path.dirname(dir);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    await generateKit(tmp, opts);
    const built = readKit(tmp);
    if (!built) throw new Error('demo kit generation produced an incomplete kit');
    // Move any stale kit aside first (rename onto a non-empty folder fails), then swap the new one in.
    if (fs.existsSync(dir)) {
      if (!opts.force && readKit(dir)) return readKit(dir)!; // another process finished first: use its kit
      const old = `${tmp}.old`;
      fs.renameSync(dir, old);
      fs.rmSync(old, { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      const other = readKit(dir);
      if (other) return other; // lost a race to a concurrent generation: theirs is byte-identical
      throw err;
    }
    return readKit(dir)!;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Where the kit lives: `models/demo` in the project (a checkout), unless that can't be written (an installed app
 * whose files are read-only) and holds no valid kit — then the per-user data folder.
 */
export function defaultKitDir(env: NodeJS.ProcessEnv = process.env): string {
  const userDir = path.join(dataHome(env), 'demo-kit');
  if (isKit(demoKitDir)) return demoKitDir;
  if (isKit(userDir)) return userDir;
  return writableFolder(path.dirname(demoKitDir)) ? demoKitDir : userDir;
}

function isKit(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'kit.json')) && readKit(dir) !== undefined;
}

/** True when `dir` (or its nearest existing ancestor) accepts new files. */
function writableFolder(dir: string): boolean {
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    const up = path.dirname(d);
    if (up === d) return false;
    d = up;
  }
  try {
    fs.accessSync(d, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The kit at `dir` (default: where ensureDemoKit puts it) if it is complete and current, else undefined. */
export function readKit(dir?: string): DemoKit | undefined {
  if (dir === undefined) {
    for (const d of [demoKitDir, path.join(dataHome(), 'demo-kit')]) {
      const k = readKit(d);
      if (k) return k;
    }
    return undefined;
  }
  let json: KitJson;
  try {
    json = KitJson.parse(JSON.parse(fs.readFileSync(path.join(dir, 'kit.json'), 'utf8')));
  } catch {
    return undefined;
  }
  if (json.version !== DEMO_KIT_VERSION) return undefined;
  for (const [f, sha] of Object.entries(json.files)) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(path.join(dir, f));
    } catch {
      return undefined;
    }
    if (sha256(bytes) !== sha) return undefined;
  }
  const dataset = path.resolve(projectRoot, json.dataset);
  if (!fs.existsSync(dataset)) return undefined;
  return {
    label: json.label,
    version: json.version,
    dir,
    checkpoint: path.join(dir, json.checkpoint),
    sae: path.join(dir, json.sae),
    labels: path.join(dir, json.labels),
    dataset,
    layer: json.layer,
    modelId: json.modelId,
    saeId: json.saeId,
    dSae: json.dSae,
    meanL0Fraction: json.meanL0Fraction,
  };
}

async function generateKit(dir: string, opts: EnsureDemoKitOptions): Promise<void> {
  const { signal } = opts;
  const total = 5;
  const step = (done: number, phase: string) => opts.onProgress?.({ phase, done, total });
  const pairs = readDemoPairs();

  step(0, 'demo kit: tokenizer');
  const ckptRel = 'checkpoint';
  const ckpt = path.join(dir, ckptRel);
  fs.mkdirSync(ckpt, { recursive: true });
  const tokFiles = buildDemoTokenizer(tokenizerCorpus(pairs), DEMO_VOCAB);
  writeJson(path.join(ckpt, 'tokenizer.json'), tokFiles.tokenizerJson, false);
  writeJson(path.join(ckpt, 'tokenizer_config.json'), tokFiles.tokenizerConfig);
  writeJson(path.join(ckpt, 'special_tokens_map.json'), tokFiles.specialTokensMap);
  throwIfAborted(signal);

  step(1, 'demo kit: checkpoint');
  const shape = { ...DEMO_MODEL_SHAPE, vocabSize: tokFiles.vocabSize };
  writeDemoCheckpoint(ckpt, shape, SEED);
  fs.writeFileSync(path.join(ckpt, 'README.md'), checkpointReadme(shape));
  throwIfAborted(signal);

  step(2, 'demo kit: backbone activations');
  const tokenizer = await loadTokenizer(ckpt);
  const sequences = pairs.slice(0, CALIBRATION_PAIRS).flatMap((p) => [tokenizer.encodeChat(p.prompt, p.chosen).ids, tokenizer.encodeChat(p.prompt, p.rejected).ids]);
  // CPU always: the kit's bytes must not depend on which accelerator generated it.
  const session = await openBackbone({ checkpoint: ckpt, layer: DEMO_LAYER, precision: 'f32', ep: 'cpu' });
  let hidden: Float32Array[];
  try {
    hidden = await session.hidden(sequences, { signal });
  } finally {
    await session.close();
  }
  throwIfAborted(signal);

  step(3, 'demo kit: SAE');
  const st = openSafetensors(path.join(ckpt, 'model.safetensors'));
  let embed: Float32Array;
  try {
    embed = st.readF32('model.embed_tokens.weight');
  } finally {
    st.close();
  }
  const sae = buildDemoSae({
    embed,
    hiddenSize: shape.hiddenSize,
    sequences,
    hidden,
    dSae: DEMO_D_SAE,
    seed: SEED + 1,
    excludeTokens: new Set([tokenizer.specialIds.bos, tokenizer.specialIds.pad]),
  });
  // Gemma Scope's own path convention, so the SAE's id reads like a real one (…/average_l0_K).
  const saeRel = path.join('sae', `layer_${DEMO_LAYER}`, `width_${DEMO_D_SAE}`, `average_l0_${Math.round(sae.meanL0Fraction * DEMO_D_SAE)}`, 'params.npz');
  fs.mkdirSync(path.dirname(path.join(dir, saeRel)), { recursive: true });
  await writeNpz(path.join(dir, saeRel), sae.arrays, { compress: false });
  throwIfAborted(signal);

  step(4, 'demo kit: latent labels');
  const modelId = 'sparserm-demo-gemma-2';
  const saeId = `${DEMO_LAYER}-demo-res-${DEMO_D_SAE}`;
  const labels = buildDemoLabels({ sae: sae.arrays, sequences, hidden, tokenStrings: (ids) => tokenizer.tokenStrings(ids), modelId, source: saeId });
  const labelsRel = path.join('labels', 'demo-latent-labels.jsonl');
  fs.mkdirSync(path.join(dir, 'labels'), { recursive: true });
  fs.writeFileSync(path.join(dir, labelsRel), labels.map((l) => JSON.stringify(l)).join('\n') + '\n');

  fs.writeFileSync(path.join(dir, 'README.md'), kitReadme());
  const files = Object.fromEntries(
    [
      'README.md',
      ...['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md'].map((f) => path.join(ckptRel, f)),
      saeRel,
      labelsRel,
    ].map((f) => [f, sha256(fs.readFileSync(path.join(dir, f)))]),
  );
  const kit: KitJson = {
    label: DEMO_LABEL,
    version: DEMO_KIT_VERSION,
    checkpoint: ckptRel,
    sae: saeRel,
    labels: labelsRel,
    layer: DEMO_LAYER,
    dataset: path.relative(projectRoot, demoPairsPath),
    modelId,
    saeId,
    dSae: DEMO_D_SAE,
    meanL0Fraction: Math.round(sae.meanL0Fraction * 1e4) / 1e4,
    files,
  };
  // kit.json last: its presence (with every listed file) is what marks the kit complete.
  writeJson(path.join(dir, 'kit.json'), kit);
  step(5, 'demo kit: done');
}

function sha256(bytes: Buffer): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function writeJson(file: string, value: unknown, pretty = true): void {
  fs.writeFileSync(file, (pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value)) + '\n');
}

function checkpointReadme(shape: typeof DEMO_MODEL_SHAPE & { vocabSize: number }): string {
  return `# ${DEMO_LABEL}: tiny Gemma-2 checkpoint

This is NOT a language model. It is a random-weight Gemma2ForCausalLM generated by SparseRM Studio's demo kit
(seeded, so every machine generates the same bytes) in the exact Hugging Face layout, so every screen and command
can run on a fresh machine without downloading gated weights. Its scores and latents carry no meaning about the text.

- hidden ${shape.hiddenSize}, intermediate ${shape.intermediateSize}, ${shape.numLayers} layers, ${shape.numHeads} heads / ${shape.numKvHeads} KV heads,
  head_dim ${shape.headDim} (≠ hidden/heads, as in real Gemma-2), sliding window ${shape.slidingWindow} on even layers
- tokenizer: byte-level BPE with byte fallback in Gemma's layout (same special-token ids, " " → "▁"),
  ${shape.vocabSize} tokens with merges learnt from the demo TruthfulQA texts; the real gemma-2-it chat template
`;
}

function kitReadme(): string {
  return `# SparseRM Studio demo kit — ${DEMO_LABEL}

Generated by \`ensureDemoKit()\` (main/engine/demo/kit.ts); safe to delete (it is regenerated on next use).

- checkpoint/: tiny random-weight Gemma-2 (Hugging Face layout) + Gemma-style tokenizer and chat template
- sae/layer_${DEMO_LAYER}/width_${DEMO_D_SAE}/average_l0_K/params.npz: Gemma Scope-layout JumpReLU SAE for layer ${DEMO_LAYER}; its directions follow
  frequent tokens' embeddings and its thresholds are calibrated on this backbone so latents fire sparsely
- labels/demo-latent-labels.jsonl: Neuronpedia explanation-export shape; each label lists the latent's measured
  top-activating demo tokens
- dataset: resources/demo/truthfulqa/pairs.jsonl (TruthfulQA, Apache-2.0; evaluation data: do not use to train a
  language model)
`;
}
