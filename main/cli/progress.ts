/**
 * Progress lines for long CLI commands, on stderr: each phase reported once when it finishes (plus, for phases that
 * take a while, an interim line at most every few seconds), training epochs one line each, and notes — what was
 * reused, why training stopped — printed as they come. Pure apart from `write` and `now`, so it is unit-tested.
 */
import type { RunDemoProgress } from '../engine/demo/run-demo';

const STAGE_TEXT: Record<string, string> = { kit: 'demo kit', train: 'train', score: 'score', baselines: 'baselines', export: 'export', import: 'import', generate: 'generate' };
const PHASE_TEXT: Record<string, string> = {
  tokenize: 'tokenizing',
  backbone: 'backbone forward passes',
  sae: 'SAE latents',
  features: 'features',
  store: 'saving scores',
  export: 'writing pairs',
};

export function stageProgress(write: (line: string) => void, opts: { now?: () => number; intervalMs?: number } = {}): (p: RunDemoProgress) => void {
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? 3000;
  const started = new Map<string, number>();
  const lastLine = new Map<string, number>();
  const finished = new Set<string>();
  return (p) => {
    if (p.note) return write(p.note);
    const stage = p.stage ? STAGE_TEXT[p.stage] ?? p.stage : '';
    if (p.stats) {
      const s = p.stats;
      const val = s.valLoss !== undefined ? `, held-out loss ${s.valLoss.toFixed(4)}${s.valAccuracy !== undefined ? `, held-out accuracy ${(100 * s.valAccuracy).toFixed(1)}%` : ''}` : '';
      return write(`${stage || 'train'}: epoch ${s.epoch} (of at most ${p.total}): train loss ${s.trainLoss.toFixed(4)}${val}`);
    }
    const phase = p.phase.startsWith('demo kit: ') ? p.phase.slice('demo kit: '.length) : (PHASE_TEXT[p.phase] ?? p.phase);
    const key = `${p.stage ?? ''}/${p.phase}`;
    const label = stage && stage !== phase ? `${stage} › ${phase}` : phase;
    if (finished.has(key)) return;
    const t = now();
    if (!started.has(key)) started.set(key, t);
    if (p.total > 0 && p.done >= p.total) {
      finished.add(key);
      const secs = (t - started.get(key)!) / 1000;
      return write(`${label}: ${p.total.toLocaleString('en')} done${secs >= 1 ? ` in ${secs.toFixed(0)} s` : ''}`);
    }
    // Interim lines only for phases that take a while: a fast phase prints its one "done" line.
    if (t - (lastLine.get(key) ?? started.get(key)!) < interval) return;
    lastLine.set(key, t);
    write(`${label}: ${p.done.toLocaleString('en')}/${p.total.toLocaleString('en')}${p.etaS !== undefined ? ` (~${Math.ceil(p.etaS)} s left)` : ''}`);
  };
}
