import type { Command } from 'commander';

// Placeholder until its owner lands the real command: it refuses loudly instead of pretending to work.
export function register(program: Command): void {
  program
    .command('export')
    .description('export kept pairs as TRL JSONL (not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      process.stderr.write('error: sparserm export is not implemented yet\n');
      process.exitCode = 1;
    });
}
