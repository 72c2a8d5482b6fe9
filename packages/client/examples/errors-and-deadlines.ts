/**
 * What each typed error means and what to do about it: a deadline, a rate
 * limit with its retry hint, a bad key, a prompt too long.
 *
 *   SMOLLM_ADDRESS=127.0.0.1:50050 SMOLLM_API_KEY=sk-... node --import tsx packages/client/examples/errors-and-deadlines.ts
 */
import {
  AuthenticationError,
  DeadlineExceededError,
  InvalidRequestError,
  RateLimitError,
  SmolLMClient,
  UnavailableError,
  type ChatCompletionParams,
} from "@smollm/client";

const client = new SmolLMClient({
  address: process.env["SMOLLM_ADDRESS"] ?? "127.0.0.1:50050",
  ...(process.env["SMOLLM_API_KEY"] ? { apiKey: process.env["SMOLLM_API_KEY"] } : {}),
  // Retry UNAVAILABLE before the first token up to 5 times (worker or gateway restarts).
  retry: { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 3_000 },
});

async function ask(params: ChatCompletionParams, timeoutMs: number): Promise<string> {
  for (;;) {
    try {
      const done = await client.streamChatCompletion(params, { timeoutMs }).collect();
      return done.content;
    } catch (error: unknown) {
      if (error instanceof RateLimitError) {
        // A per-key limit: the server says when to come back.
        const wait = error.retryAfterMs ?? 1_000;
        console.error(`rate limited (${error.message}); retrying in ${wait} ms`);
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (error instanceof DeadlineExceededError) return `(gave up after ${timeoutMs} ms)`;
      if (error instanceof InvalidRequestError && error.reason === "context_length_exceeded") return "(prompt too long: shorten it)";
      if (error instanceof AuthenticationError) throw new Error("check SMOLLM_API_KEY", { cause: error });
      if (error instanceof UnavailableError) throw new Error("the cluster is unavailable; retries exhausted", { cause: error });
      throw error;
    }
  }
}

try {
  const messages = [{ role: "user", content: "Write one sentence about the sea." }];
  console.log(await ask({ model: "SmolLM3-3B", messages, maxTokens: 32 }, 30_000));
  // 5 ms is less than any round trip through the cluster: this one always hits its deadline.
  console.log(await ask({ model: "SmolLM3-3B", messages, maxTokens: 1_000 }, 5));
} finally {
  client.close();
}
