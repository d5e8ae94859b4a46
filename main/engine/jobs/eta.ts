/**
 * Throughput and ETA from progress samples. Uses an exponentially weighted rate so a slow start (model load,
 * cold cache) does not dominate, and only the units done in this process (a resumed job's earlier batches are
 * not counted as instant work).
 */
export class EtaEstimator {
  private lastT: number | null = null;
  private lastDone = 0;
  private rate: number | null = null;

  /** halfLifeMs: how fast old throughput is forgotten. */
  constructor(private readonly halfLifeMs = 5000) {}

  /** Feed (units done so far, time in ms). Returns the smoothed rate in units/second (null until known). */
  update(done: number, tMs: number): number | null {
    if (this.lastT === null) {
      this.lastT = tMs;
      this.lastDone = done;
      return this.rate;
    }
    const dt = tMs - this.lastT;
    const dd = done - this.lastDone;
    if (dt <= 0 || dd < 0) return this.rate;
    const inst = (dd / dt) * 1000;
    const alpha = 1 - Math.pow(0.5, dt / this.halfLifeMs);
    this.rate = this.rate === null ? inst : this.rate + alpha * (inst - this.rate);
    this.lastT = tMs;
    this.lastDone = done;
    return this.rate;
  }

  get unitsPerSecond(): number | null {
    return this.rate;
  }

  /** Seconds left, or null when unknown (no total, or no throughput yet). */
  etaSeconds(done: number, total: number | null | undefined): number | null {
    if (total === null || total === undefined || this.rate === null || this.rate <= 0) return null;
    return Math.max(0, (total - done) / this.rate);
  }
}
