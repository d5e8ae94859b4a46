import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

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

  /** Renames over the target and fsyncs the folder so the rename itself is durable. */
  commit(): void {
    this.finish();
    fs.renameSync(this.tmp, this.target);
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
