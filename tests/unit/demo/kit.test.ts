import fs from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { loadTokenizer, openBackbone } from '../../../main/engine/backbone';
import { checkSaeForBackbone, loadSae } from '../../../main/engine/sae';
import { DEMO_KIT_VERSION, DEMO_LABEL, defaultKitDir, ensureDemoKit, readKit, type DemoKit } from '../../../main/engine/demo/kit';
import { demoKitDir } from '../../../main/engine/paths';
import { jumpRelu } from '../../../main/engine/demo/sae-builder';
import { readDemoPairs } from '../../../main/engine/demo/demo-data';
import { CancelledError } from '../../../main/engine/errors';
import { tempDir } from '../../helpers/paths';

// Graph and feature caches go to a throwaway home, never the user's.
process.env.SPARSERM_HOME = tempDir('sparserm-demo-home-');

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

let root: string;
let kit: DemoKit;

beforeAll(async () => {
  root = tempDir('sparserm-kit-');
  kit = await ensureDemoKit({ dir: path.join(root, 'a') });
}, 240_000);

describe('ensureDemoKit', () => {
  it('generates a complete, labelled kit in the Hugging Face / Gemma Scope layouts', () => {
    expect(kit.label).toBe(DEMO_LABEL);
    expect(kit.label).toBe('demo (random weights)');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md']) {
      expect(fs.existsSync(path.join(kit.checkpoint, f)), f).toBe(true);
    }
    expect(fs.readFileSync(path.join(kit.checkpoint, 'README.md'), 'utf8')).toContain('demo (random weights)');
    expect(kit.sae).toMatch(/sae\/layer_3\/width_256\/average_l0_\d+\/params\.npz$/);
    const kitJson = JSON.parse(fs.readFileSync(path.join(kit.dir, 'kit.json'), 'utf8'));
    expect(kitJson).toMatchObject({ label: 'demo (random weights)', version: DEMO_KIT_VERSION, layer: 3, dataset: 'resources/demo/truthfulqa/pairs.jsonl' });
    // No leftovers from the temp-folder-then-rename write.
    expect(fs.readdirSync(root)).toEqual(['a']);
  });

  it('two generations are byte-identical', async () => {
    const b = await ensureDemoKit({ dir: path.join(root, 'b') });
    const filesA = listFiles(kit.dir);
    expect(listFiles(b.dir)).toEqual(filesA);
    for (const f of filesA) expect(fs.readFileSync(path.join(b.dir, f)).equals(fs.readFileSync(path.join(kit.dir, f))), f).toBe(true);
  }, 240_000);

  it('is idempotent: a valid kit is reused untouched', async () => {
    const stamp = fs.statSync(path.join(kit.dir, 'kit.json')).mtimeMs;
    const t0 = Date.now();
    const again = await ensureDemoKit({ dir: kit.dir });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(again).toEqual(kit);
    expect(fs.statSync(path.join(kit.dir, 'kit.json')).mtimeMs).toBe(stamp);
  });

  it('regenerates a kit that is incomplete, altered or from another version', async () => {
    const dir = path.join(root, 'c');
    const reset = () => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(kit.dir, dir, { recursive: true });
      expect(readKit(dir)).toBeDefined();
    };
    // Each defect alone makes the kit invalid (cheap checks) ...
    reset();
    fs.rmSync(path.join(dir, 'checkpoint', 'model.safetensors'));
    expect(readKit(dir)).toBeUndefined();
    reset();
    const kitJson = path.join(dir, 'kit.json');
    fs.writeFileSync(kitJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(kitJson, 'utf8')), version: DEMO_KIT_VERSION - 1 }));
    expect(readKit(dir)).toBeUndefined();
    reset();
    fs.writeFileSync(kitJson, '{"label": "demo (random weights)"');
    expect(readKit(dir)).toBeUndefined();
    reset();
    // ... and ensureDemoKit repairs one: an altered file (not just a missing one) is caught and regenerated.
    const labels = path.join(dir, 'labels', 'demo-latent-labels.jsonl');
    fs.appendFileSync(labels, '{"tampered": true}\n');
    fs.rmSync(path.join(dir, 'checkpoint', 'tokenizer.json'));
    expect(readKit(dir)).toBeUndefined();
    const fixed = await ensureDemoKit({ dir });
    expect(fs.readFileSync(labels, 'utf8')).not.toContain('tampered');
    for (const f of listFiles(kit.dir)) expect(fs.readFileSync(path.join(fixed.dir, f)).equals(fs.readFileSync(path.join(kit.dir, f))), f).toBe(true);
    expect(fs.readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]); // no temp or stale folders left
  }, 240_000);
});

describe('ensureDemoKit cancellation', () => {
  it('a cancelled generation leaves nothing behind (no kit, no temp folder)', async () => {
    const parent = tempDir('sparserm-kit-cancel-');
    const ac = new AbortController();
    const phases: string[] = [];
    const p = ensureDemoKit({
      dir: path.join(parent, 'kit'),
      signal: ac.signal,
      onProgress: (e) => {
        phases.push(e.phase);
        if (e.done === 1) ac.abort(); // after the tokenizer, before the backbone
      },
    });
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    expect(phases[0]).toBe('demo kit: tokenizer');
    expect(fs.readdirSync(parent)).toEqual([]);
  }, 120_000);
});

describe('defaultKitDir', () => {
  it('is models/demo in a writable checkout (the per-user folder is only for read-only installs)', () => {
    expect(defaultKitDir()).toBe(demoKitDir);
  });
});

describe('the kit works with the real engines', () => {
  it('the SAE matches the backbone and fires sparsely but really on demo texts it was not calibrated on', async () => {
    const sae = await loadSae(kit.sae);
    expect(sae.hookLayer).toBe(kit.layer);
    const session = await openBackbone({ checkpoint: kit.checkpoint, layer: kit.layer, ep: 'cpu' });
    try {
      expect(checkSaeForBackbone(sae, { hiddenSize: session.info.hiddenSize, layer: kit.layer, checkpoint: kit.checkpoint }).warnings).toEqual([]);
      const tok = await loadTokenizer(kit.checkpoint);
      // Pairs 600.. were not used for calibration (the first 300 were).
      const seqs = readDemoPairs(kit.dataset)
        .slice(600, 640)
        .map((p) => tok.encodeChat(p.prompt, p.chosen).ids);
      const hidden = await session.hidden(seqs);
      const arrays = {
        W_enc: { shape: [sae.dIn, sae.dSae], data: sae.W_enc },
        W_dec: { shape: [sae.dSae, sae.dIn], data: sae.W_dec },
        b_enc: { shape: [sae.dSae], data: sae.b_enc },
        b_dec: { shape: [sae.dIn], data: sae.b_dec },
        threshold: { shape: [sae.dSae], data: sae.threshold },
      };
      const f = new Float32Array(sae.dSae);
      const l0: number[] = [];
      const everFired = new Set<number>();
      seqs.forEach((ids, s) => {
        for (let t = 1; t < ids.length; t++) {
          jumpRelu(hidden[s].subarray(t * sae.dIn, (t + 1) * sae.dIn), arrays, f);
          let n = 0;
          f.forEach((v, j) => {
            if (v > 0) {
              n++;
              everFired.add(j);
            }
          });
          l0.push(n);
        }
      });
      const meanL0 = l0.reduce((a, b) => a + b, 0) / l0.length;
      expect(meanL0 / sae.dSae).toBeGreaterThan(0.03);
      expect(meanL0 / sae.dSae).toBeLessThan(0.12);
      expect(Math.min(...l0)).toBeGreaterThan(0); // every token shows some latent
      expect(everFired.size).toBeGreaterThan(sae.dSae * 0.8);
    } finally {
      await session.close();
    }
  }, 120_000);

  it('labels are one Neuronpedia explanation per latent, naming measured top tokens', () => {
    const lines = fs.readFileSync(kit.labels, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(kit.dSae);
    lines.forEach((l, j) => {
      expect(l).toMatchObject({ modelId: kit.modelId, layer: kit.saeId, index: String(j) });
      expect(l.description).toMatch(/^demo: (top tokens ‘.+’.* \(fires on [\d.]+% of demo tokens\)|never fired on the demo texts)$/);
    });
    expect(lines.filter((l) => l.description.startsWith('demo: top tokens')).length).toBeGreaterThan(kit.dSae * 0.9);
  });

  it('the tokenizer vocabulary matches the checkpoint', async () => {
    const tok = await loadTokenizer(kit.checkpoint);
    const cfg = JSON.parse(fs.readFileSync(path.join(kit.checkpoint, 'config.json'), 'utf8'));
    expect(tok.vocabSize).toBe(cfg.vocab_size);
    expect(tok.specialIds).toEqual({ pad: 0, eos: 1, bos: 2, unk: 3, startOfTurn: 106, endOfTurn: 107 });
  });
});
