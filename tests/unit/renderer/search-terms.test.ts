import { describe, expect, it } from 'vitest';
import { searchTerms, splitHits } from '../../../renderer/src/text/search-terms';

describe('search terms to highlight', () => {
  it('reads words, prefixes and quoted phrases as the full-text search does, without operators', () => {
    expect(searchTerms('tax* "fortune cookie" OR (seeds) NOT')).toEqual(['fortune cookie', 'seeds', 'tax']);
    expect(searchTerms('  ')).toEqual([]);
    expect(searchTerms(undefined)).toEqual([]);
  });

  it('splits text into runs, marking every case-insensitive hit and keeping all the text', () => {
    const text = 'Fortune cookies: a fortune COOKIE story (a.b)';
    const runs = splitHits(text, searchTerms('"fortune cookie" a.b'));
    expect(runs.map((r) => r.text).join('')).toBe(text);
    expect(runs.filter((r) => r.hit).map((r) => r.text)).toEqual(['Fortune cookie', 'fortune COOKIE', 'a.b']);
    // Regex characters in a term are literal: "a.b" does not match "axb".
    expect(splitHits('axb', ['a.b'])).toEqual([{ text: 'axb', hit: false }]);
  });
});
