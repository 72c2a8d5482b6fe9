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
  readonly #minRatio: number;

  /**
   * @param minRatio cached fractions below this count as 0 (default 0.5, as
   * SGLang's cache threshold): every prompt shares the chat template's first
   * tokens, and a short shared prefix must not pull unrelated conversations
   * onto one worker; load decides those instead.
   */
  constructor(minRatio = 0.5) {
    this.#minRatio = minRatio;
  }

  score(query: RouteQuery, candidates: readonly Candidate[]): number[] {
    const cached = query.cachedTokens;
    if (!cached) throw new PrefixIndexUnavailableError();
    const total = Math.max(1, query.promptTokens.length);
    return candidates.map((c) => {
      const ratio = Math.min(1, (cached.get(c.info.id) ?? 0) / total);
      return ratio >= this.#minRatio ? ratio : 0;
    });
  }
}
