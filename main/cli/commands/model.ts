import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('model')
    .description('build or reuse the truncated backbone graph (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm model is not implemented yet\n');
      process.exitCode = 1;
    });
}
