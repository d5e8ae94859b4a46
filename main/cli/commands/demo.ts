import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('demo')
    .description('run the main job on the demo kit (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm demo is not implemented yet\n');
      process.exitCode = 1;
    });
}
