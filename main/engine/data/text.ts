/**
 * Text that UTF-8 cannot represent. JSON escapes can spell half of a UTF-16 surrogate pair (`"\ud800"`); JavaScript
 * keeps it as a lone surrogate, SQLite would store it as invalid UTF-8 and it would come back as U+FFFD ×3. The
 * fatal UTF-8 decoder already refuses raw bytes of that kind, so only escapes can produce one.
 */

/** Quick pre-check on the raw JSON text: only a `\uD800`–`\uDFFF` escape can make a lone surrogate. */
const SURROGATE_ESCAPE = /\\u[dD][89abcdefABCDEF]/;
/** With the `u` flag a paired surrogate is one code point, so \p{Cs} matches only lone halves. */
const LONE_SURROGATE = /\p{Cs}/u;

export interface Unrepresentable {
  /** Where in the row: `chosen`, `chosen[1].content`, `metadata.key` (or `(key)` for an object key). */
  path: string;
  /** The offending code unit, as a JSON escape (`\ud800`). */
  escape: string;
}

/** The first lone surrogate anywhere in a parsed JSON row (keys and strings), or null. */
export function findUnrepresentable(rawText: string | null, value: unknown): Unrepresentable | null {
  if (rawText !== null && !SURROGATE_ESCAPE.test(rawText)) return null;
  return walk(value, '');
}

function where(path: string): string {
  return path === '' ? '(the row)' : path;
}

function walk(v: unknown, path: string): Unrepresentable | null {
  if (typeof v === 'string') {
    const m = LONE_SURROGATE.exec(v);
    return m ? { path: where(path), escape: `\\u${m[0].charCodeAt(0).toString(16).padStart(4, '0')}` } : null;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const r = walk(v[i], `${path}[${i}]`);
      if (r) return r;
    }
    return null;
  }
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const kp = path === '' ? k : `${path}.${k}`;
      if (LONE_SURROGATE.test(k)) return walk(k, `${kp} (the key)`);
      const r = walk(x, kp);
      if (r) return r;
    }
  }
  return null;
}

/** The import report's reason for a row with unrepresentable text. */
export function unrepresentableReason(u: Unrepresentable): string {
  return `field "${u.path}": lone surrogate ${u.escape} (half of a UTF-16 pair, written as a JSON escape) cannot be stored as UTF-8: expected Unicode text (escapes \\ud800–\\udfff only in high + low pairs)`;
}
