/**
 * Workers this gateway failed to reach recently, ejected from its routing
 * for a while (outlier ejection, as in Envoy): the scheduler sees a worker
 * that heartbeats through Redis, but a partition between one gateway and
 * that worker, or a worker that just died and is still registered (its
 * registration lives ~3 heartbeats), would otherwise cost each request routed
 * there a failed attempt (an ack timeout, a connection error) before a retry.
 *
 * Ejected workers are sent to the scheduler as `avoid_workers`: it chooses
 * them only when no other worker fits, so an ejection never makes a request
 * fail that could have been served.
 */
export class WorkerEjections {
  readonly #ms: number;
  readonly #now: () => number;
  readonly #until = new Map<string, number>();

  /**
   * @param ms how long a worker stays ejected after a failure; 0 disables ejection.
   * @param now clock, for tests; default Date.now.
   */
  constructor(ms: number, now: () => number = Date.now) {
    this.#ms = ms;
    this.#now = now;
  }

  /** Ejects `workerId` for the configured time (again, if it already was); returns true when it was not ejected before. */
  eject(workerId: string): boolean {
    if (this.#ms <= 0) return false;
    const fresh = !this.#isEjected(workerId);
    this.#until.set(workerId, this.#now() + this.#ms);
    return fresh;
  }

  /** The worker answered: it is reachable again. */
  restore(workerId: string): void {
    this.#until.delete(workerId);
  }

  /** Workers ejected now, expired ones dropped. */
  active(): string[] {
    const now = this.#now();
    const out: string[] = [];
    for (const [id, until] of this.#until) {
      if (until > now) out.push(id);
      else this.#until.delete(id);
    }
    return out;
  }

  #isEjected(workerId: string): boolean {
    return (this.#until.get(workerId) ?? 0) > this.#now();
  }
}
