// Public surface of the ONNX graph builder (see graph-builder.ts for usage and the external-data contract).
export * from './graph-builder';
