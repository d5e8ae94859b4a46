#!/usr/bin/env node
// The `sparserm` command. The engine is TypeScript; tsx compiles it on the fly so the CLI
// needs no build step after `npm install`.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../main/cli/index.ts', import.meta.url).href);
