import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('import')
    .description('import preference pairs (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm import is not implemented yet\n');
      process.exitCode = 1;
    });
}
