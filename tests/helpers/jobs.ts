/** Waits for an API job to end (any state but queued / running); `seen` collects each polled message. */
import type { Job } from '../../main/api/contract';

export async function followJob(h: { getJob(input: { jobId: string }): Promise<Job> }, jobId: string, seen?: string[]): Promise<Job> {
  for (;;) {
    const j = await h.getJob({ jobId });
    seen?.push(j.message);
    if (j.state !== 'running' && j.state !== 'queued') return j;
    await new Promise((r) => setTimeout(r, 20));
  }
}
