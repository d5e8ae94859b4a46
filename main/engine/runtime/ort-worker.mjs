// One ONNX Runtime session inside a worker thread, driven by ort.ts (`createSession(model, { worker: true })`), so a
// long forward pass never blocks the caller's event loop (the Node binding runs inference synchronously).
// Plain JavaScript on purpose: a worker entry must load without a TypeScript loader (tsx, vitest, Electron).
// Protocol (one request at a time, answered in order):
//   {op: 'create', model: string | Uint8Array, options}  → {ok, inputNames, outputNames} | {ok: false, error}
//   {op: 'run', feeds: {name: {type, data, dims}}, outputs?} → {ok, outputs: {name: {type, data, dims}}}
//   {op: 'release'}                                      → {ok}, then the worker exits
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
ort.env.logLevel = 'error';
let session;

parentPort.on('message', async (msg) => {
  try {
    if (msg.op === 'create') {
      session = await ort.InferenceSession.create(msg.model, msg.options);
      parentPort.postMessage({ ok: true, inputNames: session.inputNames, outputNames: session.outputNames });
    } else if (msg.op === 'run') {
      const feeds = {};
      for (const [k, v] of Object.entries(msg.feeds)) feeds[k] = new ort.Tensor(v.type, v.data, v.dims);
      const res = msg.outputs ? await session.run(feeds, msg.outputs) : await session.run(feeds);
      const outputs = {};
      const transfer = new Set();
      for (const [k, t] of Object.entries(res)) {
        outputs[k] = { type: t.type, data: t.data, dims: [...t.dims] };
        if (t.data && t.data.buffer instanceof ArrayBuffer) transfer.add(t.data.buffer);
      }
      try {
        parentPort.postMessage({ ok: true, outputs }, [...transfer]); // move, don't copy, large outputs
      } catch {
        parentPort.postMessage({ ok: true, outputs }); // buffers ORT owns may not be transferable: copy
      }
    } else if (msg.op === 'release') {
      if (session) await session.release();
      session = undefined;
      parentPort.postMessage({ ok: true });
      parentPort.close();
    }
  } catch (err) {
    parentPort.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
