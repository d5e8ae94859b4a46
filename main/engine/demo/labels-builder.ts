import { jumpRelu, type DemoSae } from './sae-builder';

/**
 * Demo latent labels in Neuronpedia's explanation-export shape (one JSON object per line: modelId, layer,
 * index, description, explanationModelName, typeName), generated honestly from what each latent does on the
 * demo texts: its most frequent activating tokens. No label claims more than was measured.
 */
export interface NeuronpediaExplanation {
  modelId: string;
  layer: string;
  index: string;
  description: string;
  explanationModelName: string;
  typeName: string;
}

export interface LabelInput {
  sae: DemoSae['arrays'];
  sequences: number[][];
  hidden: Float32Array[];
  /** Display strings for ids (the tokenizer's `tokenStrings`). */
  tokenStrings: (ids: number[]) => string[];
  modelId: string;
  /** Neuronpedia "layer" / source id, e.g. "3-demo-res-256". */
  source: string;
}

export function buildDemoLabels(inp: LabelInput): NeuronpediaExplanation[] {
  const [H, dSae] = inp.sae.W_enc.shape;
  const perLatent: Array<Map<string, { n: number; sum: number }>> = Array.from({ length: dSae }, () => new Map());
  const fired = new Array<number>(dSae).fill(0);
  let tokens = 0;
  const f = new Float32Array(dSae);
  inp.sequences.forEach((ids, s) => {
    const strings = inp.tokenStrings(ids);
    for (let t = 1; t < ids.length; t++) {
      tokens++;
      jumpRelu(inp.hidden[s].subarray(t * H, (t + 1) * H), inp.sae, f);
      const key = display(strings[t]);
      for (let j = 0; j < dSae; j++) {
        if (f[j] <= 0) continue;
        fired[j]++;
        const e = perLatent[j].get(key) ?? { n: 0, sum: 0 };
        e.n++;
        e.sum += f[j];
        perLatent[j].set(key, e);
      }
    }
  });
  return perLatent.map((m, j) => {
    // Top-activating tokens: highest mean activation among tokens that fired it at least twice (a one-off is noise).
    const seen = [...m].filter(([, e]) => e.n >= 2);
    const ranked = (seen.length ? seen : [...m]).sort((a, b) => b[1].sum / b[1].n - a[1].sum / a[1].n || (a[0] < b[0] ? -1 : 1));
    const top = ranked.slice(0, 3);
    const pct = tokens ? ((100 * fired[j]) / tokens).toFixed(1) : '0';
    const description = top.length
      ? `demo: top tokens ${top.map(([k]) => `‘${k}’`).join(', ')} (fires on ${pct}% of demo tokens)`
      : 'demo: never fired on the demo texts';
    return {
      modelId: inp.modelId,
      layer: inp.source,
      index: String(j),
      description,
      explanationModelName: 'sparserm-demo top-activating tokens',
      typeName: 'demo_top_tokens',
    };
  });
}

/** Token text for a label: spaces trimmed, newlines and empty byte continuations made visible. */
function display(s: string): string {
  const t = s.replaceAll('\n', '↵').trim();
  return t === '' ? (s.length ? '␣' : '·') : t;
}
