import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import type { Plugin } from 'vite';

/**
 * The ONNX Runtime worker (engine/runtime/ort-worker.mjs) is started with `new Worker(new URL('./ort-worker.mjs',
 * import.meta.url))`; bundling main into one file moves that URL to out/main/, so the worker is copied beside it.
 */
function copyOrtWorker(): Plugin {
  return {
    name: 'sparserm-copy-ort-worker',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'ort-worker.mjs', source: readFileSync(resolve(__dirname, 'main/engine/runtime/ort-worker.mjs'), 'utf8') });
    },
  };
}
import vue from '@vitejs/plugin-vue';

// main/ and preload/ are bundled for Electron's Node; native modules (onnxruntime-node, better-sqlite3) stay external.
// The preload runs sandboxed, where only `electron` can be required: it is emitted as one self-contained CJS file.
export default defineConfig({
  main: {
    plugins: [copyOrtWorker()],
    build: {
      outDir: 'out/main',
      rollupOptions: { input: { index: resolve(__dirname, 'main/app/index.ts') }, external: ['onnxruntime-node', 'better-sqlite3'] },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      externalizeDeps: false,
      rollupOptions: {
        input: { index: resolve(__dirname, 'preload/index.ts') },
        external: ['electron'],
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(__dirname, 'renderer'),
    plugins: [vue()],
    resolve: { alias: { '@api': resolve(__dirname, 'main/api') } },
    build: {
      outDir: resolve(__dirname, 'out/renderer'),
      // No inline module preload polyfill: the CSP forbids inline scripts.
      modulePreload: { polyfill: false },
      rollupOptions: { input: { index: resolve(__dirname, 'renderer/index.html') } },
    },
  },
});
