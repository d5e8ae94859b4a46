/**
 * The ONE typed API contract of SparseRM Studio. Every operation the UI can ask for is listed here with its input
 * and output zod schemas. Electron IPC (main/app), the preload bridge (preload/), `sparserm serve` (main/server) and
 * the renderer's two clients all derive from this object, so a new operation is added in exactly one place and every
 * transport validates the same shapes. This module imports only zod: it is shared with the browser bundle.
 * The schemas and operations live in contract/, one module per workflow; this file composes them into `contract`.
 */
import { z } from 'zod';
import type { OpNameList } from './op-names';
import { fileOps, jobOps } from './contract/common';
import { datasetOps, exportOps } from './contract/datasets';
import { reviewOps } from './contract/review';
import { demoOps, labelOps, modelOps, precisionOps, trainingOps } from './contract/models';
import { generationOps } from './contract/generation';
import { chartOps } from './contract/charts';
import { learnOps } from './contract/learn';
import { compareOps } from './contract/compare';

export * from './contract/common';
export * from './contract/datasets';
export * from './contract/review';
export * from './contract/models';
export * from './contract/generation';
export * from './contract/charts';
export * from './contract/learn';
export * from './contract/compare';

// The operations in their historical order (environment / models first, the precision check last).
export const contract = {
  ...modelOps,
  ...demoOps,
  ...datasetOps,
  ...reviewOps,
  ...trainingOps,
  ...exportOps,
  ...fileOps,
  ...jobOps,
  ...labelOps,
  ...generationOps,
  ...chartOps,
  ...learnOps,
  ...compareOps,
  ...precisionOps,
} as const;

export type Contract = typeof contract;
export type OpName = keyof Contract;
export type OpInput<K extends OpName> = z.input<Contract[K]['input']>;
export type OpParsedInput<K extends OpName> = z.output<Contract[K]['input']>;
export type OpOutput<K extends OpName> = z.output<Contract[K]['output']>;

/** The client interface the renderer uses, implemented over IPC (preload) and over HTTP (serve). */
export type ApiClient = { [K in OpName]: (input: OpInput<K>) => Promise<OpOutput<K>> };

/** Server-side implementation: receives validated input. */
export type ApiHandlers = { [K in OpName]: (input: OpParsedInput<K>) => Promise<OpOutput<K>> };

export const opNames = Object.keys(contract) as OpName[];

// Compile-time proof that op-names.ts (used by the preload) lists exactly the contract's operations.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatch: Same<OpName, OpNameList> = true;
void namesMatch;

export function isOpName(name: string): name is OpName {
  return Object.prototype.hasOwnProperty.call(contract, name);
}

/** Errors travel as data across IPC and HTTP; the kind lets the UI tell "fix your input" from "bug". */
export const ApiError = z.object({
  kind: z.enum(['input', 'exists', 'cancelled', 'internal', 'not-found', 'unauthorized', 'unavailable', 'unreachable']),
  message: z.string(),
  /** The input field the error concerns (InputError.details.field or the first zod path segment): the UI shows it there. */
  field: z.string().optional(),
});
export type ApiError = z.infer<typeof ApiError>;
export const ApiEnvelope = z.union([z.object({ ok: z.literal(true), value: z.unknown() }), z.object({ ok: z.literal(false), error: ApiError })]);
export type ApiEnvelope = z.infer<typeof ApiEnvelope>;

export class ApiCallError extends Error {
  constructor(
    readonly kind: ApiError['kind'],
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}
