/**
 * Engine operations the API needs beyond the store: model registration, demo kit, import, train, score,
 * explanations, export, labels. Each maps to the public functions of the engine areas; long ones are jobs.
 * The parts live in engine-ops/, one module per workflow; createEngineOps composes them.
 */
import type { Store, Pair, Score, RewardModel } from '../engine/store';
import type { JobRunner } from '../engine/jobs';
import type { Precision } from '../engine/backbone';
import type { LatentContribution, ModelInfo, OpOutput, OpParsedInput, TrainResult } from './contract';
import { createDataOps } from './engine-ops/data';
import { createDemoOps } from './engine-ops/demo';
import { createExplainOps } from './engine-ops/explain';
import { createModelOps } from './engine-ops/models';
import { createPrecisionOps } from './engine-ops/precision';
import { createRewardModelViews } from './engine-ops/reward-model-views';
import { createTrainScoreOps } from './engine-ops/train-score';

export interface EngineOps {
  doctor(): Promise<Omit<OpOutput<'doctor'>, 'dbPath'>>;
  listModels(): ModelInfo[];
  addCheckpoint(path: string): Promise<ModelInfo>;
  addSae(path: string): Promise<ModelInfo>;
  checkCompatibility(i: OpParsedInput<'checkCompatibility'>): Promise<OpOutput<'checkCompatibility'>>;
  startBuild(i: OpParsedInput<'buildModel'>): string;
  demoStatus(): Promise<OpOutput<'demoStatus'>>;
  startInstallDemo(): string;
  startImport(i: OpParsedInput<'importDataset'>): string;
  startTrain(i: OpParsedInput<'train'>): string;
  listRuns(datasetId?: number): TrainResult[];
  startScore(i: { datasetId: number; rewardModelId: string; precision?: Precision }): string;
  startPrecisionCheck(i: { datasetId: number; rewardModelId: string; precision: 'f16' | 'int8' | 'int4' | 'f32'; threshold?: number; limit?: number }): string;
  explanation(p: Pair, score: Score, rm: RewardModel): { chosen: LatentContribution[]; rejected: LatentContribution[] } | null;
  explainPair(p: Pair, rm: RewardModel, top: number): Promise<OpOutput<'explainPair'>>;
  exportPreview(i: { datasetId: number; format: 'standard' | 'conversational'; lines: number; include: ExportSelection }): Promise<OpOutput<'exportPreview'>>;
  startExport(i: { datasetId: number; format: 'standard' | 'conversational'; path: string; include: ExportSelection; droppedPath?: string; overwrite?: boolean; allowEmpty?: boolean; onePerGroup?: boolean }): string;
  importLabels(i: OpParsedInput<'importLabels'>): Promise<OpOutput<'importLabels'>>;
  /** How a finished job's stored result is shown to the UI (e.g. an import's result as an ImportReport). */
  resultView(kind: string, result: unknown): unknown;
}

export interface ExportSelection {
  uncertain: boolean;
  undecided: boolean;
}

export interface EngineContext {
  store: Store;
  runner: JobRunner;
  partials: Map<string, unknown>;
}

export function createEngineOps(ctx: EngineContext): EngineOps {
  // One manifest / label cache for listModels, listRuns, the train job and explanations.
  const views = createRewardModelViews(ctx.store);
  // Created in this order so the job kinds are defined as before: import, export, build, demo, train, score, precisionCheck.
  const data = createDataOps(ctx);
  const models = createModelOps(ctx, views);
  const demo = createDemoOps(ctx);
  const trainScore = createTrainScoreOps(ctx, views);
  const precision = createPrecisionOps(ctx);
  const explain = createExplainOps(views);
  return { ...models, ...demo, ...data, ...trainScore, ...precision, ...explain };
}
