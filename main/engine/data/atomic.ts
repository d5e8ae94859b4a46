import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

import { InputError } from '../errors';

/**
 * A file written under a temporary name in the same folder and renamed over the target only once complete and
 * fsynced, so the target is never seen half-written (a crash leaves at most a `.name.tmp-…` file beside it).
 */
export class AtomicFile {
  readonly tmp: string;
  private fd: number | null;
  private buf: string[] = [];
  private bufLen = 0;
  bytes = 0;

  constructor(readonly target: string) {
    const dir = path.dirname(target);
    this.tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    this.fd = fs.openSync(this.tmp, 'wx', 0o644);
  }

  write(s: string): void {
    this.buf.push(s);
    this.bufLen += s.length;
    if (this.bufLen >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.fd === null || this.buf.length === 0) return;
    const b = Buffer.from(this.buf.join(''), 'utf8');
    this.buf = [];
    this.bufLen = 0;
    let off = 0;
    while (off < b.length) off += fs.writeSync(this.fd, b, off);
    this.bytes += b.length;
  }

  /** Flushes and fsyncs the temp file (rename separately with commit()). */
  finish(): void {
    this.flush();
    if (this.fd !== null) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /**
   * Puts the file under its name and fsyncs the folder so that is durable. `overwrite: false` (the default) never
   * replaces a file that appeared meanwhile (a hard link is an atomic create-if-absent; file systems without hard
   * links fall back to a check then a rename). Replacing keeps the old file's permission bits (and owner, if allowed).
   */
  commit(opts: { overwrite?: boolean } = {}): void {
    this.finish();
    let old: fs.Stats | null = null;
    try {
      old = fs.statSync(this.target);
    } catch {
      /* new file */
    }
    if (old && !opts.overwrite) throw new OutputExistsError([this.target]);
    if (old) {
      fs.chmodSync(this.tmp, old.mode & 0o7777);
      try {
        fs.chownSync(this.tmp, old.uid, old.gid);
      } catch {
        /* not permitted (another owner): the mode is still kept */
      }
      fs.renameSync(this.tmp, this.target);
    } else if (opts.overwrite) {
      fs.renameSync(this.tmp, this.target);
    } else {
      let linked = false;
      try {
        fs.linkSync(this.tmp, this.target);
        linked = true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new OutputExistsError([this.target]);
        if (fs.existsSync(this.target)) throw new OutputExistsError([this.target]);
        fs.renameSync(this.tmp, this.target);
      }
      if (linked) fs.rmSync(this.tmp, { force: true });
    }
    fsyncDir(path.dirname(this.target));
  }

  abort(): void {
    if (this.fd !== null) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

function fsyncDir(dir: string): void {
  // Not supported on Windows (EISDIR/EPERM): the rename is still atomic there, only its durability is weaker.
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** An output file exists and replacing it was not asked for (`--force`, `overwrite: true`, or the UI's confirmation). */
export class OutputExistsError extends InputError {
  constructor(readonly paths: string[]) {
    super({
      file: paths.join(', '),
      expected: 'a new output file (pass --force to replace it, or choose another name)',
      got: paths.length === 1 ? 'an existing file' : `${paths.length} existing files`,
    });
    this.name = 'OutputExistsError';
  }
}

/** Temp files of AtomicFile: `.<name>.tmp-<pid>-<8 hex>`. */
const TEMP_NAME = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;
/** No export runs for a week: a temp file untouched that long is a leftover even if its pid was reused. */
export const STALE_TEMP_AGE_MS = 7 * 24 * 3600 * 1000;

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files left in `dir` by killed writers: those whose writer process (the pid in the name) no longer
 * exists on this machine, or that nobody has modified for a week (a reused pid). Files of live processes, this one
 * included, are left alone: they may be another export in progress. Returns the names removed.
 */
export function removeStaleTempFiles(dir: string, nowMs = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP_NAME.exec(n);
    if (!m) continue;
    const p = path.join(dir, n);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    if (pidAlive(Number(m[1])) && nowMs - st.mtimeMs < STALE_TEMP_AGE_MS) continue;
    try {
      fs.rmSync(p, { force: true });
      removed.push(n);
    } catch {
      /* not ours to remove (permissions): leave it */
    }
  }
  return removed;
}
