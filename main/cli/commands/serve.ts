import path from 'node:path';
import fs from 'node:fs';
import type { Command } from 'commander';
import { action, printJson, progress } from '../output';
import { InputError } from '../../engine/errors';
import { databasePath, projectRoot } from '../../engine/paths';
import { createHandlers } from '../../api/handlers';
import { startServer } from '../../server';
import { openPolicyBackend } from '../../server/openai-local';
import { EP_REQUESTS, type EpRequest } from '../../engine/runtime/ort';

/**
 * `sparserm serve`: the desktop UI over HTTP on 127.0.0.1 (headless GPU boxes, browser tests). The first stdout line
 * is the URL to open, token included; everything else goes to stderr.
 */
export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the UI and its API over HTTP on 127.0.0.1 only, protected by a per-launch token')
    .option('--port <n>', 'port (default: a free one)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InputError({ field: '--port', expected: 'an integer port 0–65535', got: v });
      return n;
    })
    .option('--db <path>', 'database file (default: SPARSERM_DB, else the per-user database)')
    .option('--renderer <dir>', 'built renderer folder (default: out/renderer; build it with `npm run build`)')
    .option('--json', 'first stdout line is JSON {openUrl, url, port, token, db} instead of the bare URL')
    .option('--policy <dir>', 'also serve this checkpoint\'s decoding as OpenAI-compatible /v1/chat/completions and /v1/models (same token)')
    .option('--served-model-name <name>', 'model id of --policy on /v1 (default: the folder name)')
    .option('--ep <ep>', 'compute device for --policy: auto | cuda | webgpu | cpu', 'auto')
    .action(
      action(async (opts: { port?: number; db?: string; renderer?: string; json?: boolean; policy?: string; servedModelName?: string; ep: string }) => {
        if (!(EP_REQUESTS as readonly string[]).includes(opts.ep)) throw new InputError({ field: '--ep', expected: 'auto, cuda, webgpu or cpu', got: JSON.stringify(opts.ep) });
        const rendererDir = path.resolve(opts.renderer ?? path.join(projectRoot, 'out', 'renderer'));
        if (!fs.existsSync(path.join(rendererDir, 'index.html'))) {
          throw new InputError({ file: rendererDir, expected: 'a built renderer with index.html (run `npm run build` first)' });
        }
        const dbPath = databasePath(opts.db);
        fs.mkdirSync(path.dirname(dbPath), { recursive: true });
        const handlers = createHandlers({ dbPath });
        const openAi = opts.policy ? await openPolicyBackend(path.resolve(opts.policy), { id: opts.servedModelName, ep: opts.ep as EpRequest }) : undefined;
        const server = await startServer({ handlers, rendererDir, port: opts.port ?? 0, openAi });
        if (opts.json) printJson({ openUrl: server.openUrl, url: server.url, port: server.port, token: server.token, db: dbPath });
        else process.stdout.write(server.openUrl + '\n');
        progress(`sparserm serve: listening on ${server.url} (loopback only); database ${dbPath}`);
        if (openAi) progress(`OpenAI-compatible endpoint: ${server.url}v1/chat/completions, model "${openAi.id}" (Authorization: Bearer <the token>)`);
        progress('open the URL above (it carries the access token); Ctrl+C stops the server');
        await new Promise<void>((resolve) => {
          const stop = () => {
            progress('stopping…');
            void server.close().then(async () => {
              handlers.close();
              await openAi?.close();
              resolve();
            });
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );
}
