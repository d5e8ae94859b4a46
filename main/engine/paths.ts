import os from 'node:os';
import path from 'node:path';

/**
 * Per-user locations shared by the CLI, `sparserm serve` and the desktop app, so all three see the same
 * database and caches. Overrides: SPARSERM_HOME (everything), SPARSERM_DB (database file), SPARSERM_CACHE (caches).
 *
 * Defaults: Linux `$XDG_DATA_HOME/sparserm-studio` (~/.local/share/sparserm-studio),
 * macOS `~/Library/Application Support/SparseRM Studio`, Windows `%APPDATA%\SparseRM Studio`.
 */
export function dataHome(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.SPARSERM_HOME) return path.resolve(env.SPARSERM_HOME);
  const home = os.homedir();
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'SparseRM Studio');
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'SparseRM Studio');
  return path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'sparserm-studio');
}

/** The SQLite database: `--db` beats SPARSERM_DB beats the default. */
export function databasePath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return path.resolve(explicit);
  if (env.SPARSERM_DB) return path.resolve(env.SPARSERM_DB);
  return path.join(dataHome(env), 'sparserm.db');
}

/** Root of derived, rebuildable data (ONNX graphs, activation caches). */
export function cacheHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SPARSERM_CACHE) return path.resolve(env.SPARSERM_CACHE);
  return path.join(dataHome(env), 'cache');
}

export const cacheDirs = {
  graphs: (env?: NodeJS.ProcessEnv) => path.join(cacheHome(env), 'graphs'),
  features: (env?: NodeJS.ProcessEnv) => path.join(cacheHome(env), 'features'),
};

/** Where trained reward-model folders go by default. */
export function rewardModelsHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(dataHome(env), 'reward-models');
}

/** The repository root (for shipped resources and the generated demo kit). */
export const projectRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const demoKitDir = path.join(projectRoot, 'models', 'demo');
export const resourcesDir = path.join(projectRoot, 'resources');
