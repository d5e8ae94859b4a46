/**
 * A crash-safe, append-only key → bytes store on disk (the feature cache's storage).
 * Layout: `<dir>/index.jsonl` (one `{"k","s","o","n"}` line per record) + `<dir>/shard-<pid>-<t>.bin` data files.
 * A writer first appends the record bytes to its own shard, fsyncs, then appends the index lines (one small
 * O_APPEND write, atomic on local filesystems), so:
 *  - a process killed mid-batch leaves orphan shard bytes (harmless) or a torn last index line (ignored on load);
 *  - every record the index names is complete (lines pointing past their shard's end are ignored too);
 *  - several processes can fill the same cache: each writes its own shard.
 */
import fs from 'node:fs';
import path from 'node:path';

interface Loc {
  shard: string;
  offset: number;
  length: number;
}

export class AppendStore {
  private readonly index = new Map<string, Loc>();
  private readonly fds = new Map<string, number>();
  private shardName?: string;
  private shardSize = 0;

  private constructor(readonly dir: string) {}

  static open(dir: string): AppendStore {
    fs.mkdirSync(dir, { recursive: true });
    const s = new AppendStore(dir);
    s.load();
    return s;
  }

  private load(): void {
    const file = path.join(this.dir, 'index.jsonl');
    if (!fs.existsSync(file)) return;
    const sizes = new Map<string, number>();
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      let rec: { k?: unknown; s?: unknown; o?: unknown; n?: unknown };
      try {
        rec = JSON.parse(line);
      } catch {
        continue; // torn line from a crash
      }
      if (typeof rec.k !== 'string' || typeof rec.s !== 'string' || typeof rec.o !== 'number' || typeof rec.n !== 'number') continue;
      if (!/^shard-[\w.-]+\.bin$/.test(rec.s)) continue;
      let size = sizes.get(rec.s);
      if (size === undefined) {
        try {
          size = fs.statSync(path.join(this.dir, rec.s)).size;
        } catch {
          size = -1;
        }
        sizes.set(rec.s, size);
      }
      if (rec.o + rec.n > size) continue;
      this.index.set(rec.k, { shard: rec.s, offset: rec.o, length: rec.n });
    }
  }

  get size(): number {
    return this.index.size;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get(key: string): Uint8Array | undefined {
    const loc = this.index.get(key);
    if (!loc) return undefined;
    let fd = this.fds.get(loc.shard);
    if (fd === undefined) {
      fd = fs.openSync(path.join(this.dir, loc.shard), 'r');
      this.fds.set(loc.shard, fd);
    }
    const buf = Buffer.allocUnsafe(loc.length);
    let done = 0;
    while (done < loc.length) {
      const n = fs.readSync(fd, buf, done, loc.length - done, loc.offset + done);
      if (n === 0) throw new Error(`feature cache ${this.dir}: ${loc.shard} is shorter than its index says`);
      done += n;
    }
    return buf;
  }

  /** Appends records durably (data, fsync, then index). Keys already present are skipped. */
  putMany(records: Array<[string, Uint8Array]>): void {
    const fresh = records.filter(([k]) => !this.index.has(k));
    if (fresh.length === 0) return;
    if (!this.shardName || this.shardSize > 1 << 30) {
      this.shardName = `shard-${process.pid}-${Date.now().toString(36)}.bin`;
      this.shardSize = 0;
    }
    const shardPath = path.join(this.dir, this.shardName);
    const fd = fs.openSync(shardPath, 'a');
    // Offsets come from the file itself, never from memory alone (a name reused after a crash must not lie).
    this.shardSize = fs.fstatSync(fd).size;
    const lines: string[] = [];
    const locs: Array<[string, Loc]> = [];
    try {
      for (const [k, bytes] of fresh) {
        fs.writeSync(fd, bytes);
        locs.push([k, { shard: this.shardName, offset: this.shardSize, length: bytes.length }]);
        lines.push(JSON.stringify({ k, s: this.shardName, o: this.shardSize, n: bytes.length }));
        this.shardSize += bytes.length;
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const indexPath = path.join(this.dir, 'index.jsonl');
    const ifd = fs.openSync(indexPath, 'a+');
    try {
      // A crash may have left a torn last line without its newline: start ours on a fresh line.
      const size = fs.fstatSync(ifd).size;
      const last = Buffer.alloc(1);
      const torn = size > 0 && fs.readSync(ifd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
      fs.writeSync(ifd, (torn ? '\n' : '') + lines.join('\n') + '\n');
      fs.fsyncSync(ifd);
    } finally {
      fs.closeSync(ifd);
    }
    for (const [k, loc] of locs) this.index.set(k, loc);
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function bytesF32(b: Uint8Array): Float32Array {
  const copy = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
}

/** Sparse latent row ↔ bytes: [count u32][idx i32 × count][val f32 × count]. */
export function encodeSparse(idx: Int32Array, val: Float32Array): Uint8Array {
  const out = new Uint8Array(4 + idx.length * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, idx.length, true);
  for (let i = 0; i < idx.length; i++) {
    dv.setInt32(4 + i * 4, idx[i], true);
    dv.setFloat32(4 + idx.length * 4 + i * 4, val[i], true);
  }
  return out;
}

export function decodeSparse(b: Uint8Array): { idx: Int32Array; val: Float32Array } {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0, true);
  const idx = new Int32Array(n);
  const val = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    idx[i] = dv.getInt32(4 + i * 4, true);
    val[i] = dv.getFloat32(4 + n * 4 + i * 4, true);
  }
  return { idx, val };
}
