import type { Candidate, RouteQuery, Scorer } from "./scorer.ts";

/**
 * Prefers workers with free KV cache for this request: the fraction of the
 * worker's free KV cells left after the prompt and max_tokens are placed.
 */
export class KvCapacityScorer implements Scorer {
  readonly name = "kv";

  score(query: RouteQuery, candidates: readonly Candidate[]): number[] {
    const need = query.promptTokens.length + query.maxTokens;
    return candidates.map((c) => {
      const total = Math.max(1, c.info.slots * c.info.contextSize);
      return Math.max(0, (c.info.freeKvTokens - need) / total);
    });
  }
}
