import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('hidden')
    .description('resid_post of block L for every token (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm hidden is not implemented yet\n');
      process.exitCode = 1;
    });
}
