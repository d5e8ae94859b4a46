/** Explanations: a scored pair's stored top latents, and explainPair (both responses run now, cached per pair). */
import { explainPair, type PairExplanation, type ResponseExplanation as EngineExplanation } from '../../engine/sparserm/service';
import type { LatentContribution, OpOutput, ResponseExplanation } from '../contract';
import type { EngineOps } from '../engine-ops';
import type { RewardModelViews } from './reward-model-views';
import { offThread } from './shared';

export function createExplainOps(views: RewardModelViews): Pick<EngineOps, 'explanation' | 'explainPair'> {
  const { manifestOf, labelsFor } = views;
  const explainCache = new Map<string, OpOutput<'explainPair'>>();

  function toExplanation(e: EngineExplanation, labels: Map<number, string>): ResponseExplanation {
    const start = e.responseSpan[0];
    return {
      score: e.score,
      bias: e.bias,
      tokens: e.tokens,
      pooledSpan: e.pooledSpan,
      tokenContributions: e.tokenContributions,
      ...(e.saeEncoding ? { saeEncoding: e.saeEncoding } : {}),
      latents: e.contributions.map((c) => {
        const perToken = new Array<number>(e.tokens.length).fill(0);
        for (const t of c.tokens) if (t.index - start >= 0 && t.index - start < perToken.length) perToken[t.index - start] = t.activation;
        return {
          latent: c.latent,
          label: c.label ?? labels.get(c.latent) ?? null,
          side: c.side,
          contribution: c.contribution,
          activation: c.activation,
          projection: c.projection,
          trainingMean: c.trainingMean,
          trainingStd: c.trainingStd,
          weight: c.weight,
          tokenContributions: c.tokenContributions,
          firing: c.firing,
          perToken,
        };
      }),
    };
  }

  return {
    explanation(_p, score, rm) {
      const e = score.explanation as { top?: { latent: number; chosen: number; rejected: number }[] } | null;
      if (!e?.top?.length) return null;
      const labels = labelsFor(rm, e.top.map((t) => t.latent));
      const side = (k: 'chosen' | 'rejected'): LatentContribution[] =>
        e.top!.map((t) => ({ latent: t.latent, label: labels.get(t.latent) ?? null, contribution: t[k], activation: null })).sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
      return { chosen: side('chosen'), rejected: side('rejected') };
    },
    async explainPair(p, rm, top) {
      const key = `${rm.id}:${p.id}:${top}`;
      const hit = explainCache.get(key);
      if (hit) return hit;
      const m = manifestOf(rm);
      const labels = m ? labelsFor(rm, m.selected.map((s) => s.index)) : new Map<number, string>();
      const ex: PairExplanation = await explainPair({ modelDir: rm.folder, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, top, labels, ...offThread });
      const marginDecomposition = { ...ex.marginDecomposition, latents: ex.marginDecomposition.latents.map((l) => ({ ...l, label: l.label ?? labels.get(l.latent) ?? null })) };
      const out = { chosen: toExplanation(ex.chosen, labels), rejected: toExplanation(ex.rejected, labels), rewardModelId: rm.id, margin: ex.margin, marginDecomposition, why: ex.why };
      explainCache.set(key, out);
      if (explainCache.size > 64) explainCache.delete(explainCache.keys().next().value!);
      return out;
    },
  };
}
