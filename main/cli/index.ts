import { buildProgram } from './program';
import { reportError, exitCodeFor } from './output';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  reportError(err);
  process.exitCode = exitCodeFor(err);
}
