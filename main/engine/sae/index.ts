export { loadSae, hookLayerFrom, type Sae } from './load';
export { checkSaeForBackbone, type BackboneShape } from './validate';
export { SaeEncoder, ensureSaeGraph, sparsifyRows } from './encoder';
export { jumpReluSubset } from './jumprelu';
export { SAE_ENCODINGS, llamaScopeNeuronpediaIds, type SaeEncoding } from './llama-scope';
export type { LoadSaeOptions } from './load';
