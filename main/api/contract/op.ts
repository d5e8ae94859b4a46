/**
 * The helpers every contract module builds its operations with. Internal: contract.ts re-exports the schemas and the
 * operation fragments, not these.
 */
import { z } from 'zod';

export const empty = z.object({}).strict();

export function op<I extends z.ZodType, O extends z.ZodType>(description: string, input: I, output: O) {
  return { description, input, output };
}

/** What each workflow's fragment of operations satisfies: name → op(description, input, output). */
export type OpTable = Record<string, { description: string; input: z.ZodType; output: z.ZodType }>;
