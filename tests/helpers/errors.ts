import { expect } from 'vitest';

import { InputError } from '../../main/engine/errors';

/** The InputError that fn throws (the test fails if it throws something else or nothing). */
export function catchInputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}
