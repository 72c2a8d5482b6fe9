import type { Candidate, RouteQuery, Scorer } from "./scorer.ts";

/** Raised when there is no index to score with; the router routes without this scorer. */
export class PrefixIndexUnavailableError extends Error {
  constructor() {
    super("prefix index unavailable");
    this.name = "PrefixIndexUnavailableError";
  }
}

/**
 * KV-cache locality: the fraction of the prompt a worker already holds in its
 * KV cache (its longest cached prefix, from the workers' block events), so
 * the turns of a conversation and prompts sharing a system prompt go where
 * their prefix need not be recomputed.
 */
export class PrefixScorer implements Scorer {
  readonly name = "prefix";
  readonly locality = true;

  score(query: RouteQuery, candidates: readonly Candidate[]): number[] {
    const cached = query.cachedTokens;
    if (!cached) throw new PrefixIndexUnavailableError();
    const total = Math.max(1, query.promptTokens.length);
    return candidates.map((c) => Math.min(1, (cached.get(c.info.id) ?? 0) / total));
  }
}
