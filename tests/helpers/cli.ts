import { vi } from 'vitest';

import { buildProgram } from '../../main/cli/program';

/** Runs the sparserm command in-process (no child process: fast, and vitest sees the code); returns stdout, stderr
 *  and the exit code it set. */
export async function runCli(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  process.exitCode = 0;
  try {
    const program = buildProgram().exitOverride();
    for (const c of program.commands) c.exitOverride();
    await program.parseAsync(['node', 'sparserm', ...args]);
  } catch (x) {
    if (!(x as { code?: string }).code?.startsWith('commander.')) throw x;
    if ((x as { code?: string }).code !== 'commander.helpDisplayed') process.exitCode = (x as { exitCode?: number }).exitCode ?? 1;
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, err, code };
}
