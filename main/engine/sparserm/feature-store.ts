/**
 * A crash-safe, append-only key → bytes store on disk (the feature cache's storage).
 * Layout: `<dir>/index.tsv` (one `key \t shard \t offset \t length \t .` line per record; TSV because parsing 100k+
 * lines is on the re-scoring hot path) + `<dir>/shard-<pid>-<t>.bin` data files.
 * A writer first appends the record bytes to its own shard, fsyncs, then appends the index lines (one small
 * O_APPEND write, atomic on local filesystems), so:
 *  - a process killed mid-batch leaves orphan shard bytes (harmless) or a torn last index line (ignored on load);
 *  - every record the index names is complete (lines pointing past their shard's end are ignored too);
 *  - several processes can fill the same cache: each writes its own shard.
 */
import fs from 'node:fs';
import path from 'node:path';

const WHOLE_SHARD_BYTES = 256 << 20;

interface Loc {
  shard: string;
  offset: number;
  length: number;
  inline?: string;
}

export class AppendStore {
  private readonly index = new Map<string, Loc>();
  private readonly fds = new Map<string, number>();
  /** Whole shards read once (up to WHOLE_SHARD_BYTES each): 100k lookups then cost no syscalls. */
  private readonly loaded = new Map<string, Buffer>();
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
    const file = path.join(this.dir, 'index.tsv');
    if (!fs.existsSync(file)) return;
    // Shard name → its size, or -1 when missing/invalid (validated once per shard, not per line: hot path).
    const sizes = new Map<string, number>();
    const text = fs.readFileSync(file, 'latin1');
    // Hand-rolled field scan (no split per line): this runs over 100k+ lines when re-scoring a large dataset.
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf('\n', pos);
      if (end < 0) end = text.length;
      const t1 = text.indexOf('\t', pos);
      const t2 = t1 < 0 || t1 > end ? -1 : text.indexOf('\t', t1 + 1);
      const t3 = t2 < 0 || t2 > end ? -1 : text.indexOf('\t', t2 + 1);
      const t4 = t3 < 0 || t3 > end ? -1 : text.indexOf('\t', t3 + 1);
      const line = pos;
      pos = end + 1;
      // The trailing "." field proves the line is complete: a torn line may end inside the length digits.
      if (t4 < 0 || t4 > end || end - t4 !== 2 || text.charCodeAt(t4 + 1) !== 0x2e || t1 === line) continue;
      const key = text.slice(line, t1);
      const shard = text.slice(t1 + 1, t2);
      if (shard === '=') {
        this.index.set(key, { shard: '', offset: 0, length: 0, inline: text.slice(t2 + 1, t3) });
        continue;
      }
      const o = Number(text.slice(t2 + 1, t3));
      const n = Number(text.slice(t3 + 1, t4));
      if (!Number.isSafeInteger(o) || !Number.isSafeInteger(n) || o < 0 || n < 0) continue;
      let size = sizes.get(shard);
      if (size === undefined) {
        size = -1;
        if (/^shard-[\w.-]+\.bin$/.test(shard)) {
          try {
            size = fs.statSync(path.join(this.dir, shard)).size;
          } catch {
            size = -1;
          }
        }
        sizes.set(shard, size);
      }
      if (o + n > size) continue;
      this.index.set(key, { shard, offset: o, length: n });
    }
  }

  /** Small string values stored in the index line itself (no shard read): e.g. text → feature key. */
  getInline(key: string): string | undefined {
    return this.index.get(key)?.inline;
  }

  putInline(records: Array<[string, string]>): void {
    const fresh = records.filter(([k]) => !this.index.has(k));
    if (fresh.length === 0) return;
    for (const [k, v] of fresh) if (/[\t\n]/.test(k + v)) throw new Error(`feature cache: tab or newline in ${JSON.stringify(k)} / ${JSON.stringify(v)}`);
    this.appendIndex(fresh.map(([k, v]) => `${k}\t=\t${v}\t0\t.`));
    for (const [k, v] of fresh) this.index.set(k, { shard: '', offset: 0, length: 0, inline: v });
  }

  get size(): number {
    return this.index.size;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get(key: string): Uint8Array | undefined {
    const loc = this.index.get(key);
    if (!loc || loc.inline !== undefined) return undefined;
    let whole = this.loaded.get(loc.shard);
    if (!whole && !this.fds.has(loc.shard)) {
      const file = path.join(this.dir, loc.shard);
      if (fs.statSync(file).size <= WHOLE_SHARD_BYTES) {
        whole = fs.readFileSync(file);
        this.loaded.set(loc.shard, whole);
      }
    }
    if (whole) return whole.subarray(loc.offset, loc.offset + loc.length);
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

  /**
   * Copies fixed-length records into one buffer: record of `items[j].key` → dest[items[j].at, + recordBytes).
   * Reads in file order and merges records that lie back to back both on disk and in dest into one read, so
   * re-scoring 100k cached responses (~1 GB of z at hidden 2304, shards over WHOLE_SHARD_BYTES) costs a few large
   * reads instead of 100k small ones and no per-record allocation.
   */
  readInto(items: Array<{ key: string; at: number }>, dest: Uint8Array, recordBytes: number): void {
    const locs = items.map(({ key, at }) => {
      const loc = this.index.get(key);
      if (!loc || loc.inline !== undefined) throw new Error(`feature cache ${this.dir}: no record for ${key}`);
      if (loc.length !== recordBytes) throw new Error(`feature cache ${this.dir}: record ${key} has ${loc.length} bytes, expected ${recordBytes}`);
      return { loc, at };
    });
    locs.sort((a, b) => (a.loc.shard < b.loc.shard ? -1 : a.loc.shard > b.loc.shard ? 1 : a.loc.offset - b.loc.offset));
    for (let i = 0; i < locs.length; ) {
      const { loc, at } = locs[i];
      let j = i + 1;
      let len = loc.length;
      while (j < locs.length && locs[j].loc.shard === loc.shard && locs[j].loc.offset === loc.offset + len && locs[j].at === at + len) len += locs[j++].loc.length;
      const whole = this.loaded.get(loc.shard);
      if (whole) dest.set(whole.subarray(loc.offset, loc.offset + len), at);
      else {
        let fd = this.fds.get(loc.shard);
        if (fd === undefined) {
          fd = fs.openSync(path.join(this.dir, loc.shard), 'r');
          this.fds.set(loc.shard, fd);
        }
        for (let done = 0; done < len; ) {
          const n = fs.readSync(fd, dest, at + done, len - done, loc.offset + done);
          if (n === 0) throw new Error(`feature cache ${this.dir}: ${loc.shard} is shorter than its index says`);
          done += n;
        }
      }
      i = j;
    }
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
        if (/[\t\n]/.test(k)) throw new Error(`feature cache key with a tab or newline: ${JSON.stringify(k)}`);
        lines.push(`${k}\t${this.shardName}\t${this.shardSize}\t${bytes.length}\t.`);
        this.shardSize += bytes.length;
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.appendIndex(lines);
    for (const [k, loc] of locs) this.index.set(k, loc);
    this.loaded.delete(this.shardName);
  }

  /** Appends complete index lines durably, after the data they name is on disk. */
  private appendIndex(lines: string[]): void {
    const indexPath = path.join(this.dir, 'index.tsv');
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
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    this.loaded.clear();
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
