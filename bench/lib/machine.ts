/** What every bench records beside its numbers: the machine, its load and the time of the run. */
import os from 'node:os';

export function machine(): { cpus: number; cpu: string | undefined; load: number[]; node: string; date: string } {
  return { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, load: os.loadavg().map((l) => +l.toFixed(2)), node: process.version, date: new Date().toISOString() };
}
