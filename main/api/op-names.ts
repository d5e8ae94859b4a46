/**
 * The operation names alone, with no zod: the sandboxed preload imports only this, so its bundle stays tiny.
 * contract.ts checks at compile time that this list and the contract's keys are the same set.
 */
export const OP_NAMES = [
  'doctor',
  'listModels',
  'addCheckpoint',
  'addSae',
  'checkCompatibility',
  'buildModel',
  'demoStatus',
  'installDemo',
  'listDatasets',
  'importDataset',
  'queryPairs',
  'getPair',
  'explainPair',
  'decide',
  'undo',
  'redo',
  'curator',
  'bulkDecide',
  'train',
  'listRuns',
  'score',
  'applyFilter',
  'exportPreview',
  'exportDataset',
  'pickPath',
  'listJobs',
  'getJob',
  'cancelJob',
  'resumeJob',
  'importLabels',
  'chartData',
] as const;

export type OpNameList = (typeof OP_NAMES)[number];
