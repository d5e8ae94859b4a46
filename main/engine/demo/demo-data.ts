import fs from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

import { InputError } from '../errors';
import { resourcesDir } from '../paths';
import { zodIssueDetails } from '../zod-issue';

/** The demo dataset shipped in resources/: TruthfulQA best-correct vs best-incorrect answer, one pair per question. */
export const demoTruthfulqaDir = path.join(resourcesDir, 'demo', 'truthfulqa');
export const demoPairsPath = path.join(demoTruthfulqaDir, 'pairs.jsonl');

const DemoPair = z.object({ id: z.string(), prompt: z.string(), chosen: z.string(), rejected: z.string(), source: z.string().optional() });
export type DemoPair = z.infer<typeof DemoPair>;

export function readDemoPairs(file = demoPairsPath): DemoPair[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const rows: DemoPair[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new InputError({ file, line: i + 1, expected: 'one JSON object per line' });
    }
    const parsed = DemoPair.safeParse(json);
    if (!parsed.success) {
      throw new InputError({ ...zodIssueDetails(parsed.error, json, file), line: i + 1 });
    }
    rows.push(parsed.data);
  });
  return rows;
}

/** Texts the demo tokenizer learns its merges from: every prompt and answer, with the chat roles and newlines
 *  the template adds, so "user", "model" and "\n" become tokens as in a real vocabulary. */
export function tokenizerCorpus(pairs: readonly DemoPair[]): string[] {
  return pairs.flatMap((p) => [`user\n${p.prompt}\n`, `model\n${p.chosen}\n`, `model\n${p.rejected}\n`]);
}
