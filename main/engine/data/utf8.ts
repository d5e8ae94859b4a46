/**
 * UTF-8 validation at the byte level, by the WHATWG / TextDecoder rules, in one linear pass: where the first invalid
 * sequence starts (to name it in a line's error) and how many there are (to tell binary data from text).
 */

/**
 * Length of the valid UTF-8 sequence starting at `i` (1–4), or 0 when the bytes there are not one (the WHATWG /
 * TextDecoder rules: no overlongs, no surrogates, nothing above U+10FFFF); -1 when the sequence is cut by the end of
 * the buffer but valid so far.
 */
function utf8SeqLen(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) need = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    need = 2;
    if (c === 0xe0) lo = 0xa0;
    else if (c === 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3;
    if (c === 0xf0) lo = 0x90;
    else if (c === 0xf4) hi = 0x8f;
  } else return 0;
  for (let k = 1; k <= need; k++) {
    if (i + k >= b.length) return -1;
    const d = b[i + k]!;
    if (d < lo || d > hi) return 0;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}

/** 0-based offset of the first byte that starts an invalid UTF-8 sequence, or -1 when it is all valid. Linear. */
export function firstInvalidUtf8(b: Uint8Array): number {
  const n = b.length;
  let i = 0;
  while (i < n) {
    if (b[i]! < 0x80) {
      i++;
      continue;
    }
    const len = utf8SeqLen(b, i);
    if (len <= 0) return i;
    i += len;
  }
  return -1;
}

/** Number of invalid UTF-8 sequences (each maximal bad run counted once per bad lead). Linear. */
export function countInvalidUtf8(b: Uint8Array, allowCutAtEnd: boolean): number {
  let bad = 0;
  let i = 0;
  const n = b.length;
  while (i < n) {
    if (b[i]! < 0x80) {
      i++;
      continue;
    }
    const len = utf8SeqLen(b, i);
    if (len > 0) i += len;
    else if (len < 0) {
      if (!allowCutAtEnd) bad++;
      break;
    } else {
      bad++;
      i++;
    }
  }
  return bad;
}
