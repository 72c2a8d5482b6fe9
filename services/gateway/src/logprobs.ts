import type { TokenLogprobs } from "@smollm/proto";
import type { LogprobContent } from "./sse-frames.ts";

/**
 * The worker's per-token log-probabilities as OpenAI's `logprobs.content`
 * entries: token text, log-probability, the token's bytes (a token may hold
 * part of a character; its text then shows U+FFFD) and the alternatives.
 */
export function toLogprobContent(entries: readonly TokenLogprobs[]): LogprobContent[] {
  return entries.map((e) => ({
    token: e.sampled?.token ?? "",
    logprob: e.sampled?.logprob ?? 0,
    bytes: [...(e.sampled?.bytes ?? [])],
    top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: [...t.bytes] })),
  }));
}
