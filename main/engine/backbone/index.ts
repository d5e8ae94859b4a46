// Public surface of the backbone engine. The tokenizer lives beside it (tokenizer.ts, chat-template.ts).
export * from './architecture';
export * from './config';
export { loadCheckpoint, type Checkpoint, type TensorRef, type LayerTensorKey } from './checkpoint';
export { clearContentHashMemory } from './content-hash';
export { buildDecoderGraph, GRAPH_FORMAT, GRAPH_INPUT, GRAPH_OUTPUT, type Precision } from './decoder-graph';
export { ensureBackboneGraph, ensureKvGraph, graphDirName, pruneGraphCache, type GraphManifest, type EnsuredGraph, type PruneResult } from './graph-cache';
export { buildKvGraph, KV_GRAPH_FORMAT, kvInputName, kvOutputName, type KvGraphSpec } from './kv-graph';
export {
  openBackbone,
  backboneRunCounter,
  planBatches,
  type BackboneSession,
  type BackboneInfo,
  type OpenBackboneOptions,
  type HiddenOptions,
} from './session';
export * from './tokenizer';
export { PRECISIONS, isPrecision, parsePrecision } from './linear-weights';
export { backboneMemoryNeed, blockParameters, assertMemoryFor, llama8bMemoryLine, systemMemory, LLAMA31_8B_L15, GEMMA2_9B_L31, memoryByPrecision, precisionNeedsLine, precisionMemoryLine, BYTES_PER_WEIGHT, type MemoryNeed } from './memory';
