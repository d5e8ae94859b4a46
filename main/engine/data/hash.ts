import { createHash } from 'node:crypto';
import fs from 'node:fs';

/** Identity of a pair's content within a dataset (duplicate detection): prompt + chosen + rejected. */
export function contentHash(prompt: string, chosen: string, rejected: string): string {
  return createHash('sha256').update(JSON.stringify([prompt, chosen, rejected])).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
