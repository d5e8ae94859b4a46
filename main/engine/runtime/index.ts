// ONNX Runtime access for the whole engine; ort.ts is the only module importing onnxruntime-node.
export * from './ort';
