/**
 * Transport-independent dispatch: validate the input against the contract, run the handler, validate the output,
 * and turn every failure into an ApiError envelope. Electron IPC and `sparserm serve` both call this, so both
 * reject the same malformed payloads with the same messages.
 */
import { z } from 'zod';
import { contract, isOpName, type ApiEnvelope, type ApiError, type ApiHandlers, type OpName } from './contract';
import { InputError, CancelledError } from '../engine/errors';

export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** An operation this transport cannot offer (a native dialog under `sparserm serve`). */
export class UnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnavailableError';
  }
}

/** The field an input error concerns, so the UI can show the message beside it. */
const fieldOf = (err: InputError): { field?: string } => (err.details?.field ? { field: err.details.field } : {});

export function toApiError(err: unknown): ApiError {
  // An output file exists and replacing it was not asked for: the UI asks the curator, then retries with overwrite.
  if (err instanceof InputError && err.name === 'OutputExistsError') return { kind: 'exists', message: err.message, ...fieldOf(err) };
  if (err instanceof InputError) return { kind: 'input', message: err.message, ...fieldOf(err) };
  if (err instanceof UnavailableError) return { kind: 'unavailable', message: err.message };
  if (err instanceof CancelledError) return { kind: 'cancelled', message: err.message };
  if (err instanceof NotFoundError) return { kind: 'not-found', message: err.message };
  if (err instanceof z.ZodError) return { kind: 'input', message: formatZodError(err) };
  const message = err instanceof Error ? err.message : String(err);
  // Engine errors whose name says they are about input (from modules we don't own) are still the user's to fix.
  if (err instanceof Error && /InputError/.test(err.name)) return { kind: 'input', message };
  return { kind: 'internal', message };
}

export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`).join('; ');
}

export async function dispatch(handlers: ApiHandlers, name: string, rawInput: unknown): Promise<ApiEnvelope> {
  if (!isOpName(name)) return { ok: false, error: { kind: 'not-found', message: `unknown operation "${name}"` } };
  const spec = contract[name as OpName];
  const parsed = spec.input.safeParse(rawInput ?? {});
  if (!parsed.success) {
    const first = parsed.error.issues[0]?.path[0];
    return { ok: false, error: { kind: 'input', message: `${name}: ${formatZodError(parsed.error)}`, ...(first !== undefined ? { field: String(first) } : {}) } };
  }
  try {
    const handler = handlers[name] as (input: unknown) => Promise<unknown>;
    const value = await handler(parsed.data);
    const out = spec.output.safeParse(value);
    // A handler returning the wrong shape is our bug, not the user's: say so instead of sending garbage.
    if (!out.success) return { ok: false, error: { kind: 'internal', message: `${name} returned an invalid result: ${formatZodError(out.error)}` } };
    return { ok: true, value: out.data };
  } catch (err) {
    if (process.env.SPARSERM_DEBUG) console.error(err);
    return { ok: false, error: toApiError(err) };
  }
}
