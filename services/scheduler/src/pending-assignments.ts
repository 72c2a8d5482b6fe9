/**
 * Requests the scheduler routed that a worker's heartbeat has not reported
 * yet. Without this, every request of a burst between two heartbeats would
 * see the same loads and go to the same worker.
 */
export class PendingAssignments {
  readonly #byWorker = new Map<string, number[]>();

  /** Records a routing to `workerId` at `now` (epoch ms). */
  add(workerId: string, now: number): void {
    const list = this.#byWorker.get(workerId);
    if (list) list.push(now);
    else this.#byWorker.set(workerId, [now]);
  }

  /** Routings newer than the worker's last heartbeat; older ones are forgotten. */
  count(workerId: string, heartbeatAt: number): number {
    const list = this.#byWorker.get(workerId);
    if (!list) return 0;
    let drop = 0;
    while (drop < list.length && (list[drop] ?? 0) <= heartbeatAt) drop++;
    if (drop > 0) list.splice(0, drop);
    if (list.length === 0) this.#byWorker.delete(workerId);
    return list.length;
  }

  /** Forgets a worker that left. */
  forget(workerId: string): void {
    this.#byWorker.delete(workerId);
  }
}
