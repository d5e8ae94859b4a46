import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the UI over HTTP on loopback (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm serve is not implemented yet\n');
      process.exitCode = 1;
    });
}
