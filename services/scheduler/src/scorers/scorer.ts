import type { WorkerInfo } from "@smollm/cluster-state";

/** What the router knows about a request. */
export interface RouteQuery {
  readonly requestId: string;
  readonly promptTokens: readonly number[];
  readonly maxTokens: number;
  /**
   * Prompt tokens each worker holds in KV cache (longest cached prefix), from
   * the block index; undefined when the index is unavailable.
   */
  readonly cachedTokens?: ReadonlyMap<string, number>;
}

/** A worker that may take the request, with work the scheduler sent it since its last heartbeat. */
export interface Candidate {
  readonly info: WorkerInfo;
  /** Requests routed to it that its last heartbeat cannot have counted yet. */
  readonly pending: number;
}

/**
 * One routing signal. Returns a score in [0, 1] per candidate (same order);
 * higher is better. A scorer that throws is skipped for that decision and
 * counted, so a broken signal degrades routing instead of failing requests.
 */
export interface Scorer {
  readonly name: string;
  /** Locality scorers are switched off by the load-imbalance guard. */
  readonly locality?: boolean;
  score(query: RouteQuery, candidates: readonly Candidate[]): number[];
}

/** Sequences busy or waiting on a worker, as the scheduler best knows it. */
export function busyOf(candidate: Candidate): number {
  return candidate.info.activeSlots + candidate.info.queued + candidate.pending;
}
