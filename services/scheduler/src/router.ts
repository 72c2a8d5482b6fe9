import { UnavailableError } from "@smollm/common";
import type { WorkerInfo } from "@smollm/cluster-state";
import { filterByContext } from "./scorers/context-fit.ts";
import { busyOf, type Candidate, type RouteQuery, type Scorer } from "./scorers/scorer.ts";
import { PendingAssignments } from "./pending-assignments.ts";

/** A scorer and its weight in the policy. */
export interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

/** The router's choice. */
export interface RouteDecision {
  readonly worker: WorkerInfo;
  /**
   * The rule that decided: `single_candidate`, `prefix` (a cached prefix won),
   * `load` (no useful prefix; load and KV decided), `imbalance_guard` (locality
   * ignored because loads were too uneven) or `load_only_no_index`.
   */
  readonly outcome: string;
  /** Prompt tokens the worker is expected to have cached, from the index (0 without one). */
  readonly expectedCachedTokens: number;
}

/** Options of {@link Router}. */
export interface RouterOptions {
  readonly scorers: readonly WeightedScorer[];
  /** Called when a scorer throws; routing goes on without it. */
  readonly onScorerError?: (scorer: string, error: unknown) => void;
  /**
   * Load-imbalance guard (after SGLang's and AIBrix's routers): when the
   * worker holding the longest cached prefix is busier than the idlest
   * candidate by more than `absolute` sequences and by more than `relative`
   * times, locality is ignored for that decision, so one hot prefix cannot
   * pile up on one worker. Default 8 and 1.5. Independently of these, a
   * locality pick with no free slot never beats a worker with a free slot.
   */
  readonly imbalance?: { absolute: number; relative: number };
  /**
   * `scored` (default): hard filters, then the weighted scorers.
   * `round_robin`: hard filters, then strict rotation — the baseline the
   * benchmarks compare cache-aware routing with.
   */
  readonly mode?: "scored" | "round_robin";
  /** Clock, for tests; default Date.now. */
  readonly now?: () => number;
}

/**
 * Chooses a worker: hard filters first (not excluded, not draining, context
 * fits), then a weighted sum of scorers, ties going to the least busy worker.
 */
export class Router {
  readonly #options: RouterOptions;
  readonly #pending = new PendingAssignments();
  readonly #now: () => number;
  #turn = 0;

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * @param exclude workers never chosen (a retry after they failed this request).
   * @param avoid workers chosen only when no other worker fits: those the
   *   asking gateway failed to reach recently (its outlier ejection); default none.
   */
  route(query: RouteQuery, workers: readonly WorkerInfo[], exclude: ReadonlySet<string>, avoid: ReadonlySet<string> = new Set()): RouteDecision {
    const live = workers.filter((w) => !w.draining && !exclude.has(w.id));
    if (live.length === 0) {
      throw new UnavailableError(
        workers.length === 0 ? "no worker is registered" : "no worker is available (all draining or failed)",
        { retryAfterMs: 1_000 },
      );
    }
    const fits = filterByContext(query, live);
    // Soft: a gateway's view of a worker may be wrong (a partition only it
    // sees, or one already healed); better an avoided worker than none.
    const preferred = avoid.size === 0 ? fits : fits.filter((w) => !avoid.has(w.id));
    const fitting = preferred.length > 0 ? preferred : fits;
    const all: Candidate[] = fitting.map((info) => ({ info, pending: this.#pending.count(info.id, info.updatedAt) }));
    // A worker believed full (every slot busy, its queue at its bound) would
    // refuse with RESOURCE_EXHAUSTED and cost the request a retry: any worker
    // with room goes first, whatever its cache holds. (Soft, like the
    // scheduler's view: when all look full the request still goes somewhere.)
    const withRoom = all.filter((c) => c.info.maxQueue <= 0 || busyOf(c) < c.info.slots + c.info.maxQueue);
    const candidates = withRoom.length > 0 ? withRoom : all;
    let best = 0;
    let outcome = "single_candidate";
    if (candidates.length > 1 && this.#options.mode === "round_robin") {
      const sorted = [...candidates.keys()].sort((x, y) =>
        (candidates[x]?.info.id ?? "").localeCompare(candidates[y]?.info.id ?? ""),
      );
      best = sorted[this.#turn++ % sorted.length] ?? 0;
      outcome = "round_robin";
    } else if (candidates.length > 1) {
      // Imbalance guard: compare the worker locality would pick with the idlest one.
      const busy = candidates.map(busyOf);
      const min = Math.min(...busy);
      let localBest = -1;
      let localCached = 0;
      candidates.forEach((c, i) => {
        const cached = query.cachedTokens?.get(c.info.id) ?? 0;
        if (cached > localCached) {
          localCached = cached;
          localBest = i;
        }
      });
      const guard = this.#options.imbalance ?? { absolute: 8, relative: 1.5 };
      const hot = localBest >= 0 ? (busy[localBest] ?? 0) : 0;
      // Waiting in a queue for a slot costs more than recomputing a prefix
      // elsewhere: a full locality pick never wins over a worker with a free slot.
      const hotFull = localBest >= 0 && hot >= (candidates[localBest]?.info.slots ?? 0);
      const someoneFree = candidates.some((c, i) => (busy[i] ?? 0) < c.info.slots);
      const imbalanced =
        localBest >= 0 && ((hotFull && someoneFree) || (hot - min > guard.absolute && hot > guard.relative * min));
      let localityUsed = false;
      const totals = new Array<number>(candidates.length).fill(0);
      for (const { scorer, weight } of this.#options.scorers) {
        if (weight === 0 || (imbalanced && scorer.locality)) continue;
        let scores: number[];
        try {
          scores = scorer.score(query, candidates);
        } catch (error: unknown) {
          this.#options.onScorerError?.(scorer.name, error);
          continue;
        }
        if (scorer.locality && scores.some((x) => x > 0)) localityUsed = true;
        for (let i = 0; i < candidates.length; i++) totals[i] = (totals[i] ?? 0) + weight * (scores[i] ?? 0);
      }
      for (let i = 1; i < candidates.length; i++) {
        const diff = (totals[i] ?? 0) - (totals[best] ?? 0);
        const ci = candidates[i];
        const cb = candidates[best];
        if (diff > 1e-9 || (Math.abs(diff) <= 1e-9 && ci && cb && busyOf(ci) < busyOf(cb))) best = i;
      }
      const chosenCached = query.cachedTokens?.get(candidates[best]?.info.id ?? "") ?? 0;
      if (imbalanced) outcome = "imbalance_guard";
      else if (query.cachedTokens === undefined) outcome = "load_only_no_index";
      else outcome = localityUsed && chosenCached > 0 ? "prefix" : "load";
    }
    const chosen = candidates[best];
    if (!chosen) throw new UnavailableError("no worker is available", { retryAfterMs: 1_000 });
    this.#pending.add(chosen.info.id, this.#now());
    return { worker: chosen.info, outcome, expectedCachedTokens: query.cachedTokens?.get(chosen.info.id) ?? 0 };
  }

  /** Forgets state about a worker that left routing. */
  forget(workerId: string): void {
    this.#pending.forget(workerId);
  }
}
