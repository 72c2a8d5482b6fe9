import { ContextLengthError } from "@smollm/common";
import type { WorkerInfo } from "@smollm/cluster-state";
import type { RouteQuery } from "./scorer.ts";

/**
 * Hard filter: prompt + max_tokens must fit the worker's per-slot context.
 * When no live worker could ever take the request, the error names the
 * largest context in the cluster so the client knows what to shorten.
 */
export function filterByContext(query: RouteQuery, workers: readonly WorkerInfo[]): WorkerInfo[] {
  // max_tokens 0 means the client set no limit: the prompt and one token must fit.
  const need = query.promptTokens.length + Math.max(1, query.maxTokens);
  const fitting = workers.filter((w) => need <= w.contextSize);
  if (fitting.length === 0 && workers.length > 0) {
    const largest = Math.max(...workers.map((w) => w.contextSize));
    throw new ContextLengthError(
      `This model's maximum context length is ${largest} tokens. However, you requested ${need} tokens ` +
        `(${query.promptTokens.length} in the messages, ${query.maxTokens} in the completion). ` +
        `Please reduce the length of the messages or completion.`,
      { param: "messages" },
    );
  }
  return fitting;
}
