import { InputError, CancelledError } from '../engine/errors';

/** Machine output: one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

/** Human progress goes to stderr so stdout stays parseable with --json. */
export function progress(message: string): void {
  process.stderr.write(message + '\n');
}

/** Exit codes: 2 = bad input (the user can fix it), 130 = cancelled, 1 = internal error. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof InputError) return 2;
  if (err instanceof CancelledError) return 130;
  return 1;
}

export function reportError(err: unknown): void {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${msg}\n`);
  if (process.env.SPARSERM_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
}

/** Wraps a command action so every failure ends on stderr with a non-zero exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportError(err);
      process.exitCode = exitCodeFor(err);
    }
  };
}
