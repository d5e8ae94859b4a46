/**
 * Errors caused by the user's input (a file, a row, a tensor, an option). They always say where and what was
 * expected, so a curator can fix the input without reading code. Anything else is an internal error.
 */
export interface InputErrorDetails {
  /** File or folder the problem is in. */
  file?: string;
  /** 1-based line number (JSONL) where it applies. */
  line?: number;
  /** Field / JSON key / config key. */
  field?: string;
  /** Tensor name (safetensors / npz / ONNX). */
  tensor?: string;
  /** What was expected, in words. */
  expected: string;
  /** What was found instead. */
  got?: string;
}

export class InputError extends Error {
  readonly details: InputErrorDetails;
  constructor(details: InputErrorDetails, cause?: unknown) {
    super(formatInputError(details), cause === undefined ? undefined : { cause });
    this.name = 'InputError';
    this.details = details;
  }
}

export function formatInputError(d: InputErrorDetails): string {
  const where = [
    d.file,
    d.line !== undefined ? `line ${d.line}` : undefined,
    d.field !== undefined ? `field "${d.field}"` : undefined,
    d.tensor !== undefined ? `tensor "${d.tensor}"` : undefined,
  ]
    .filter((s) => s !== undefined)
    .join(', ');
  const got = d.got !== undefined ? `, got ${d.got}` : '';
  return `${where ? where + ': ' : ''}expected ${d.expected}${got}`;
}

/** Thrown when a long job is cancelled through its AbortSignal. */
export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}
