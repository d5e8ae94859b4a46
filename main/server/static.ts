/** Serves the built renderer (out/renderer) read-only: regular files under its folder only, no symlinks out. */
import fs from 'node:fs';
import path from 'node:path';

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

export interface StaticFile {
  body: Buffer;
  contentType: string;
}

export function resolveStatic(root: string, urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return null;
  }
  if (rel.includes('\0')) return null;
  if (rel === '/' || rel === '') rel = '/index.html';
  const full = path.resolve(root, '.' + path.posix.normalize(rel));
  if (full !== root && !full.startsWith(root + path.sep)) return null;
  return full;
}

/**
 * Only regular files that really live under the renderer folder: the resolved path (symlinks followed) must stay
 * inside the folder's real path, the file itself must not be a symlink, and directories, FIFOs, sockets and
 * devices are never opened (a FIFO would block the server). The descriptor is opened without following links and
 * checked to be the same file that was inspected.
 */
export function readStatic(root: string, urlPath: string): StaticFile | null {
  const full = resolveStatic(path.resolve(root), urlPath);
  if (!full) return null;
  let fd: number | undefined;
  try {
    const realRoot = fs.realpathSync(root);
    const real = fs.realpathSync(full);
    if (!real.startsWith(realRoot + path.sep)) return null;
    const lst = fs.lstatSync(full);
    if (!lst.isFile()) return null;
    fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.ino !== lst.ino || st.dev !== lst.dev) return null;
    return { body: fs.readFileSync(fd), contentType: types[path.extname(full).toLowerCase()] ?? 'application/octet-stream' };
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
