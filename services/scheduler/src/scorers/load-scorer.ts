import { busyOf, type Candidate, type Scorer } from "./scorer.ts";

/**
 * Prefers idle workers: 1 when nothing runs, falling linearly to 0 when every
 * slot is busy (queued requests count as busy, so a queueing worker scores
 * 0). Counts the scheduler's own recent assignments so a burst does not all
 * land on the worker that looked idle.
 */
export class LoadScorer implements Scorer {
  readonly name = "load";

  score(_query: unknown, candidates: readonly Candidate[]): number[] {
    return candidates.map((c) => {
      return Math.max(0, 1 - busyOf(c) / Math.max(1, c.info.slots));
    });
  }
}
