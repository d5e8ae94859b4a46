/// <reference types="vite/client" />
import type { ApiClient } from '@api/contract';

declare module '*.vue' {
  import type { DefineComponent } from 'vue';
  const component: DefineComponent<object, object, unknown>;
  export default component;
}

declare global {
  interface Window {
    /** Present only under Electron (preload bridge). */
    api?: ApiClient;
  }
}
export {};
