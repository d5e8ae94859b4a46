/**
 * Pure (no DOM, so Node unit tests import it). Search terms of the review search box, as the store's full-text search reads them (words ANDed, `word*` a
 * prefix, "quoted phrase"), turned into what to highlight. Operators (AND/OR/NOT/NEAR) are not terms.
 */
export function searchTerms(query: string | undefined): string[] {
  if (!query) return [];
  const terms: string[] = [];
  const re = /"([^"]+)"|(\S+)/g;
  for (let m = re.exec(query); m; m = re.exec(query)) {
    const t = (m[1] ?? m[2] ?? '').replace(/^[-+(]+|[)*^]+$/g, '').trim();
    if (t && !/^(AND|OR|NOT|NEAR)$/.test(t)) terms.push(t);
  }
  // Longest first, so a longer term wins where two overlap.
  return [...new Set(terms)].sort((a, b) => b.length - a.length);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A case-insensitive regexp matching any term (FTS matches words case-insensitively), or null when none. */
export function termsRegExp(terms: readonly string[]): RegExp | null {
  return terms.length ? new RegExp(terms.map(escapeRe).join('|'), 'gi') : null;
}

/** Plain text cut into runs, `hit` where a term matches (for text rendered by Vue, never as HTML). */
export function splitHits(text: string, terms: readonly string[]): { text: string; hit: boolean }[] {
  const re = termsRegExp(terms);
  if (!re) return [{ text, hit: false }];
  const out: { text: string; hit: boolean }[] = [];
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[0] === '') {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) out.push({ text: text.slice(last, m.index), hit: false });
    out.push({ text: m[0], hit: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), hit: false });
  return out;
}
