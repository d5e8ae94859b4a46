/**
 * The shown pair's full explanation (explainPair: activations and per-token firing, computed on demand by the engine)
 * and the picked latent, for ExplanationPanel. Review's pair view and "Review next" share it, so both explain a
 * pair the same way.
 */
import { computed, ref, watch } from 'vue';
import type { OpOutput, PairDetail } from '@api/contract';
import { useAppStore } from './stores/app';

export type ExplainSide = 'chosen' | 'rejected';

export function usePairExplanation(pair: () => PairDetail | null) {
  const app = useAppStore();
  const picked = ref<{ latent: number; side: ExplainSide } | null>(null);
  const live = ref<OpOutput<'explainPair'> | null>(null);
  const explaining = ref(false);
  let seq = 0;
  async function explain() {
    const p = pair();
    const mine = ++seq;
    live.value = null;
    if (!p || p.margin === null || !p.explainable) return;
    explaining.value = true;
    try {
      const r = await app.api.explainPair({ pairId: p.id, top: 12 });
      if (mine === seq) live.value = r;
    } catch (err) {
      // The stored summary stays visible; say why the details are missing.
      if (mine === seq) app.notify(`explanation: ${err instanceof Error ? err.message : String(err)}`, 'error');
    } finally {
      if (mine === seq) explaining.value = false;
    }
  }
  watch(
    () => pair()?.id,
    () => {
      picked.value = null;
      void explain();
    },
    { immediate: true },
  );
  function pick(side: ExplainSide, latent: number) {
    picked.value = picked.value?.side === side && picked.value.latent === latent ? null : { side, latent };
  }
  const hasExplanation = computed(() => !!live.value || !!pair()?.explanation);
  return { picked, live, explaining, pick, hasExplanation };
}
