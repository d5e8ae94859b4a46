/**
 * An independent reference for teacher-forced log-probabilities (tests only): the truncated backbone graph at full
 * depth, then the final norm, LM head and final softcap in plain TypeScript — not the KV-cache graph's head that
 * the decoder and `serve --policy` use, so the endpoint tests compare two implementations. ~V·H MACs per token:
 * fine for the demo kit.
 */
import { loadCheckpoint, openBackbone, type BackboneSession, type Checkpoint } from '../../main/engine/backbone';
import { readHeadSpec, type HeadSpec } from '../../main/engine/backbone/lm-head';
import { loadTokenizer, type ChatTokenizer } from '../../main/engine/backbone/tokenizer';
import { logSoftmax, topK, type TopToken } from '../../main/engine/generate/token-logprobs';
import type { EpRequest } from '../../main/engine/runtime/ort';

export class TeacherForced {
  private constructor(
    readonly tokenizer: ChatTokenizer,
    private readonly session: BackboneSession,
    private readonly head: HeadSpec,
    private readonly norm: Float32Array,
    private readonly W: Float32Array,
    private readonly H: number,
    private readonly V: number,
    private readonly eps: number,
  ) {}

  static async open(dir: string, ep: EpRequest = 'cpu'): Promise<TeacherForced> {
    const ckpt: Checkpoint = await loadCheckpoint(dir);
    try {
      const c = ckpt.config;
      const head = readHeadSpec(ckpt);
      const g = ckpt.readF32(head.finalNorm, [c.hiddenSize]);
      const norm = c.arch.normStyle === 'one_plus_weight' ? g.map((v) => 1 + v) : g;
      const W = ckpt.readF32(head.lmHead, [c.vocabSize, c.hiddenSize]);
      const session = await openBackbone({ checkpoint: dir, layer: c.numLayers - 1, ep, worker: true });
      const tokenizer = await loadTokenizer(dir);
      return new TeacherForced(tokenizer, session, head, norm, W, c.hiddenSize, c.vocabSize, c.rmsNormEps);
    } finally {
      ckpt.close();
    }
  }

  private logitsOf(x: Float32Array, off: number): Float32Array {
    const { H, V, W } = this;
    let ms = 0;
    for (let d = 0; d < H; d++) ms += x[off + d]! * x[off + d]!;
    const r = 1 / Math.sqrt(ms / H + this.eps);
    const xn = new Float32Array(H);
    for (let d = 0; d < H; d++) xn[d] = x[off + d]! * r * this.norm[d]!;
    const out = new Float32Array(V);
    for (let v = 0; v < V; v++) {
      let acc = 0;
      const row = v * H;
      for (let d = 0; d < H; d++) acc += W[row + d]! * xn[d]!;
      out[v] = acc;
    }
    const cap = this.head.finalSoftcap;
    if (cap !== null) for (let v = 0; v < V; v++) out[v] = cap * Math.tanh(out[v]! / cap);
    return out;
  }

  /** Per continuation token: log p(token | prompt + previous tokens) (temperature 1) and the k likeliest there. */
  async tokenLogprobs(prompt: number[], tokens: number[], k: number, signal?: AbortSignal): Promise<{ logprob: number; top: TopToken[] }[]> {
    if (tokens.length === 0) return [];
    const [hidden] = await this.session.hidden([[...prompt, ...tokens.slice(0, -1)]], { signal });
    return tokens.map((tok, i) => {
      const lp = logSoftmax(this.logitsOf(hidden!, (prompt.length - 1 + i) * this.H));
      return { logprob: lp[tok]!, top: topK(lp, k) };
    });
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
