/**
 * Engine operations the API needs beyond the store: model registration, demo kit, import, train, score,
 * explanations, export, labels. Each maps to the public functions of the engine areas.
 */
import type { Store, Pair, Score, RewardModel } from '../engine/store';
import type { JobRunner } from '../engine/jobs';
import type { LatentContribution, ModelInfo, OpOutput, OpParsedInput, TokenActivations, TrainResult } from './contract';

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
  startScore(i: { datasetId: number; rewardModelId: string }): string;
  explanation(p: Pair, score: Score, rm: RewardModel): { chosen: LatentContribution[]; rejected: LatentContribution[] } | null;
  latentTokens(p: Pair, side: 'chosen' | 'rejected', latent: number): Promise<TokenActivations>;
  exportPreview(i: { datasetId: number; format: 'standard' | 'conversational'; lines: number }): Promise<OpOutput<'exportPreview'>>;
  startExport(i: { datasetId: number; format: 'standard' | 'conversational'; path: string }): string;
  importLabels(i: OpParsedInput<'importLabels'>): Promise<OpOutput<'importLabels'>>;
}

export interface EngineContext {
  store: Store;
  runner: JobRunner;
  partials: Map<string, unknown>;
}

export function createEngineOps(_ctx: EngineContext): EngineOps {
  throw new Error('engine operations are wired as the engine modules land');
}
