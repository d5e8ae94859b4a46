/**
 * zod issues → InputError details in plain words. zod's own messages ("Invalid input: expected number, received
 * string") read badly after InputError's "expected …", and its received value for `1e999` (Infinity) prints as
 * `null` through JSON. This says once what the field should hold and what it holds.
 */
import type { z } from 'zod';

import type { InputErrorDetails } from './errors';

type Issue = z.ZodError['issues'][number];

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object',
  tuple: 'a list',
  record: 'an object',
  null: 'null',
  date: 'a date',
};

function bound(issue: { inclusive?: boolean; origin?: string }, n: number | bigint, small: boolean): string {
  const num = Number(n);
  const unit = (word: string) => `${num} ${word}${num === 1 ? '' : 's'}`;
  switch (issue.origin) {
    case 'array':
    case 'set':
      return small ? `at least ${unit('item')}` : `at most ${unit('item')}`;
    case 'string':
      return small ? `at least ${unit('character')}` : `at most ${unit('character')}`;
    default:
      if (small && num === 0 && !issue.inclusive) return 'a number greater than 0';
      if (small) return issue.inclusive ? `a number of at least ${num}` : `a number greater than ${num}`;
      return issue.inclusive ? `a number of at most ${num}` : `a number less than ${num}`;
  }
}

/** A found value in words: strings quoted, a missing value named as such, non-finite numbers explained. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return `${v > 0 ? '' : '-'}Infinity (a number too large to represent, such as 1e999)`;
    return String(v);
  }
  if (typeof v === 'string') {
    const s = JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
    return `the string ${s}`;
  }
  if (typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v)) return `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** What the issue's field should hold, in plain words (no "expected" prefix: InputError adds it). */
export function expectedFromIssue(issue: Issue, value: unknown): string {
  switch (issue.code) {
    case 'invalid_type': {
      const words = TYPE_WORDS[issue.expected] ?? `a ${issue.expected}`;
      return typeof value === 'number' && !Number.isFinite(value) && (issue.expected === 'number' || issue.expected === 'int') ? `a finite ${words.replace(/^an? /, '')}` : words;
    }
    case 'too_small':
      return bound(issue, issue.minimum, true);
    case 'too_big':
      if (issue.origin === 'int' || issue.origin === 'number') {
        if (Number(issue.maximum) === Number.MAX_SAFE_INTEGER) return `a whole number of at most ${Number.MAX_SAFE_INTEGER}`;
      }
      return bound(issue, issue.maximum, false);
    case 'invalid_value':
      return issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((x) => JSON.stringify(x)).join(', ')}`;
    case 'unrecognized_keys':
      return 'only known keys';
    case 'invalid_format':
      return issue.format === 'regex' && 'pattern' in issue ? `a string matching ${String(issue.pattern)}` : `a string in ${issue.format} format`;
    case 'invalid_union': {
      // Each alternative's own first complaint, e.g. "a whole number greater than 0, or a string".
      const options = [...new Set(issue.errors.map((branch) => (branch[0] ? expectedFromIssue(branch[0], value) : '')).filter(Boolean))];
      if (options.length) return options.join(', or ');
      return 'a value of another kind';
    }
    default:
      return issue.message.replace(/^(Invalid input|Invalid option|Too small|Too big|Invalid [a-z ]+):\s*/i, '').replace(/^expected\s+/i, '');
  }
}

function valueAt(obj: unknown, p: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of p) cur = (cur as Record<PropertyKey, unknown> | null | undefined)?.[k];
  return cur;
}

/** InputError details (file, field, expected, got) for the first issue of a failed safeParse of `raw`. */
export function zodIssueDetails(error: z.ZodError, raw: unknown, file?: string): InputErrorDetails {
  const issue = error.issues[0]!;
  const value = valueAt(raw, issue.path);
  const field = issue.path.map(String).join('.');
  const got = issue.code === 'unrecognized_keys' ? `also ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : describeValue(value);
  return { ...(file !== undefined ? { file } : {}), ...(field ? { field } : {}), expected: expectedFromIssue(issue, value), got };
}
