import crypto from 'node:crypto';
import fs from 'node:fs';
import { z } from 'zod';

import { InputError } from '../errors';
import { zodIssueDetails } from '../zod-issue';

/** One preference pair as the SparseRM core consumes it. */
export interface PairInput {
  id?: string;
  prompt: string;
  chosen: string;
  rejected: string;
  source?: string;
}

const PairLine = z.object({
  id: z.union([z.string(), z.number()]).optional(),
  prompt: z.string(),
  chosen: z.string(),
  rejected: z.string(),
  source: z.string().optional(),
});

/** Reads a plain JSONL file of {prompt, chosen, rejected, source?, id?}; bad lines are InputErrors with the line. */
export function readPairsJsonl(file: string): PairInput[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError({ file, expected: 'a readable JSONL file of {prompt, chosen, rejected}', got: (err as NodeJS.ErrnoException).code ?? String(err) }, err);
  }
  const out: PairInput[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw new InputError({ file, line: i + 1, expected: 'one JSON object per line', got: (err as Error).message }, err);
    }
    const r = PairLine.safeParse(raw);
    if (!r.success) {
      throw new InputError({ ...zodIssueDetails(r.error, raw, file), line: i + 1 });
    }
    out.push({ ...r.data, id: r.data.id === undefined ? undefined : String(r.data.id) });
  });
  if (out.length === 0) throw new InputError({ file, expected: 'at least one pair', got: 'an empty file' });
  return out;
}

/** Content hash of the training data (order-sensitive), recorded in the manifest. */
export function pairsHash(pairs: PairInput[]): string {
  const h = crypto.createHash('sha256');
  for (const p of pairs) h.update(JSON.stringify([p.prompt, p.chosen, p.rejected]) + '\n');
  return h.digest('hex');
}
