/** Tells binary data from text by the first bytes of a file, before any line is cut. */
import { countInvalidUtf8 } from './utf8';

/**
 * Why the start of a file is binary data rather than text with a few bad bytes, or null when it looks like text.
 * Suspicious bytes are NULs, control characters JSON text never holds raw (anything below 0x20 except tab, LF, CR,
 * FF, BS and ESC) and bytes of invalid UTF-8 sequences. Binary = more than 10 % of the sample and at least 8 of them
 * (random bytes score ~50 %, UTF-16 ~50 % NULs); a text file with a few invalid sequences or a stray NUL is read
 * line by line and those lines are reported.
 */
export function binaryReason(buf: Buffer): string | null {
  if (buf.length === 0) return null;
  let nul = 0;
  let ctrl = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === 0) nul++;
    else if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x08 && c !== 0x1b) ctrl++;
  }
  // A chunk boundary can cut the last character: do not count an incomplete sequence at the very end.
  const invalid = countInvalidUtf8(buf, true);
  const suspicious = nul + ctrl + invalid;
  if (suspicious >= 8 && suspicious > buf.length * 0.1) {
    const what = [nul ? `${nul} NUL bytes` : '', ctrl ? `${ctrl} control characters` : '', invalid ? `${invalid} invalid UTF-8 sequences` : ''].filter(Boolean).join(', ');
    return what;
  }
  return null;
}

/** Kept for callers of the old name: true when binaryReason finds binary data. */
export function looksBinary(buf: Buffer): boolean {
  return binaryReason(buf) !== null;
}
