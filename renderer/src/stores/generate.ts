/**
 * The Generate screen's state: the form (kept when the curator switches screens), the running generation job and
 * its outcome. The form holds numbers as the curator typed them; `params` parses them (parseNumberField) so the
 * screen can show what is wrong beside each field instead of sending a bad request.
 */
import { defineStore } from 'pinia';
import type { Job, OpInput, OpOutput } from '@api/contract';
import { parseNumberField } from '../number-field';
import { useAppStore } from './app';

export type Recipe = 'instructed' | 'self-judged' | 'best-worst' | 'margin';
export type GenerationPreset = OpOutput<'generationPresets'>['presets'][number];
export type GenerationRun = OpOutput<'listGenerationRuns'>['runs'][number];
export type StartInput = OpInput<'startGeneration'>;

/** One-line explanations shown beside each pairing rule (the (a)–(d)). */
export const recipes: { id: Recipe; label: string; what: string }[] = [
  { id: 'instructed', label: 'Instructed pairs', what: 'One answer under a "good" instruction, one under a "bad" one: the label is given by construction; SparseRM then drops pairs it contradicts.' },
  { id: 'self-judged', label: 'Self-judged', what: 'The policy judges its own two candidates (A/B log-probabilities, both orders averaged); SparseRM then drops pairs it contradicts.' },
  { id: 'best-worst', label: 'Best vs worst', what: 'Per prompt, the candidate SparseRM scores highest is chosen and the lowest rejected.' },
  { id: 'margin', label: 'Margin above δ', what: 'Every pair of candidates whose SparseRM score margin exceeds δ, higher score chosen.' },
];

/** Numeric fields: the API field each maps to, its label and range. */
export const numberSpecs = {
  n: { label: 'candidates per prompt', min: 1, max: 64, integer: true },
  temperature: { label: 'temperature', min: 0, max: 5 },
  topP: { label: 'top-p', min: 0.01, max: 1 },
  topK: { label: 'top-k', min: 0, max: 100000, integer: true },
  seed: { label: 'seed', min: 0, max: 2147483647, integer: true },
  maxNewTokens: { label: 'max new tokens', min: 1, max: 4096, integer: true },
  delta: { label: 'margin δ', min: 0, max: 1e6 },
} as const;
export type NumberKey = keyof typeof numberSpecs;

/** tokens/s as the job's message says it ("… 123.4 tok/s …"), or null. */
export function tokensPerSecond(message: string | null | undefined): number | null {
  const m = /([\d.,]+)\s*tok(?:ens)?\s*\/\s*s/i.exec(message ?? '');
  if (!m) return null;
  const v = Number(m[1].replace(/,/g, ''));
  return Number.isFinite(v) ? v : null;
}

export const useGenerateStore = defineStore('generate', {
  state: () => ({
    promptSource: 'dataset' as 'dataset' | 'file',
    promptsDatasetId: null as string | null,
    promptsPath: '',
    policyKind: 'local' as 'local' | 'endpoint',
    checkpointId: null as string | null,
    endpointUrl: '',
    endpointModel: '',
    rewardModelId: null as string | null,
    recipe: 'instructed' as Recipe,
    presetId: '' as string,
    chosenInstruction: '',
    rejectedInstruction: '',
    name: '',
    text: { n: '2', temperature: '0.8', topP: '0.95', topK: '0', seed: '0', maxNewTokens: '64', delta: '0.5' } as Record<NumberKey, string>,
    presets: [] as GenerationPreset[],
    /** The generation job this screen started (or resumed), followed until it ends. */
    jobId: null as string | null,
    /** Runs of the current session's output dataset, newest first (listGenerationRuns). */
    lastRun: null as GenerationRun | null,
    starting: false,
  }),
  getters: {
    parsed(state): Record<NumberKey, { value: number | null; error: string | null }> {
      const out = {} as Record<NumberKey, { value: number | null; error: string | null }>;
      for (const k of Object.keys(numberSpecs) as NumberKey[]) out[k] = parseNumberField(state.text[k], numberSpecs[k]);
      return out;
    },
    job(state): Job | null {
      return state.jobId ? (useAppStore().jobs[state.jobId] ?? null) : null;
    },
  },
  actions: {
    async loadPresets() {
      const app = useAppStore();
      const r = await app.guard(() => app.api.generationPresets({}));
      if (!r) return;
      this.presets = r.presets;
      if (!this.presetId && this.presets.length) this.applyPreset(this.presets[0].id);
    },
    applyPreset(id: string) {
      const p = this.presets.find((x) => x.id === id);
      this.presetId = id;
      if (!p) return;
      this.chosenInstruction = p.instructions.chosen;
      this.rejectedInstruction = p.instructions.rejected;
    },
    /** The request, or null while a field is invalid (the screen shows which). */
    request(): StartInput | null {
      const p = this.parsed;
      const needed: NumberKey[] = ['n', 'temperature', 'topP', 'topK', 'seed', 'maxNewTokens', ...(this.recipe === 'margin' ? (['delta'] as NumberKey[]) : [])];
      if (needed.some((k) => p[k].value === null)) return null;
      if (this.recipe !== 'instructed' && p.n.value! < 2) return null;
      const prompts = this.promptSource === 'dataset' ? (this.promptsDatasetId ? { datasetId: this.promptsDatasetId } : null) : this.promptsPath.trim() ? { path: this.promptsPath.trim() } : null;
      if (!prompts) return null;
      const policy = this.policyKind === 'local' ? (this.checkpointId ? { kind: 'local' as const, checkpointId: this.checkpointId } : null) : this.endpointUrl.trim() && this.endpointModel.trim() ? { kind: 'endpoint' as const, url: this.endpointUrl.trim(), model: this.endpointModel.trim() } : null;
      if (!policy || !this.rewardModelId) return null;
      if (this.recipe === 'instructed' && (!this.chosenInstruction.trim() || !this.rejectedInstruction.trim())) return null;
      // Instructions as shown win over the preset (the curator may have edited them); the preset id is kept for the record.
      const recipe =
        this.recipe === 'instructed'
          ? { instructions: { chosen: this.chosenInstruction.trim(), rejected: this.rejectedInstruction.trim() }, ...(this.presetId ? { preset: this.presetId } : {}) }
          : this.recipe === 'margin'
            ? { delta: p.delta.value! }
            : {};
      return {
        prompts,
        policy,
        n: p.n.value!,
        sampling: { temperature: p.temperature.value!, topP: p.topP.value!, topK: p.topK.value!, seed: p.seed.value!, maxNewTokens: p.maxNewTokens.value! },
        recipe: this.recipe,
        ...recipe,
        rewardModelId: this.rewardModelId,
        ...(this.name.trim() ? { name: this.name.trim() } : {}),
      } as StartInput;
    },
    /** Follows `jobId` to its end; then loads the run it made (its dataset, for "Review pairs"). */
    async follow(jobId: string) {
      const app = useAppStore();
      this.jobId = jobId;
      this.lastRun = null;
      const done = await app.follow(jobId, 250);
      if (done.state === 'done') {
        await app.refreshDatasets();
        await this.loadRunOf(done);
      }
      return done;
    },
    /** The generation run a job made (runs record their job id; a resumed job keeps its id). */
    async loadRunOf(job: Job) {
      const app = useAppStore();
      const runs = await app.guard(() => app.api.listGenerationRuns({}));
      if (!runs) return;
      const r = job.result as { datasetId?: unknown; runId?: unknown } | null;
      const same = (a: unknown, b: unknown) => a !== null && a !== undefined && String(a) === String(b);
      this.lastRun = runs.runs.find((x) => x.jobId === job.id) ?? runs.runs.find((x) => same(r?.runId, x.id) || same(r?.datasetId, x.datasetId)) ?? null;
    },
    async resume() {
      if (!this.jobId) return;
      const app = useAppStore();
      const ref = await app.guard(() => app.api.resumeJob({ jobId: this.jobId! }));
      if (ref) await this.follow(ref.jobId);
    },
  },
});
