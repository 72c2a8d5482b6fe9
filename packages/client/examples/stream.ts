/**
 * Streams a chat completion to stdout; Ctrl-C cancels it on the server.
 *
 *   SMOLLM_ADDRESS=127.0.0.1:50050 SMOLLM_API_KEY=sk-... node --import tsx packages/client/examples/stream.ts "Tell me a joke"
 */
import { SmolLMClient, SmolLMError } from "@smollm/client";

const client = new SmolLMClient({
  address: process.env["SMOLLM_ADDRESS"] ?? "127.0.0.1:50050",
  ...(process.env["SMOLLM_API_KEY"] ? { apiKey: process.env["SMOLLM_API_KEY"] } : {}),
});
const controller = new AbortController();
process.once("SIGINT", () => controller.abort(new Error("interrupted")));

const stream = client.streamChatCompletion(
  {
    model: "SmolLM3-3B",
    messages: [
      { role: "system", content: "/no_think" },
      { role: "user", content: process.argv[2] ?? "Say hello in French." },
    ],
    maxTokens: Number(process.env["MAX_TOKENS"] ?? 64),
  },
  { signal: controller.signal, timeoutMs: 60_000 },
);
try {
  for await (const delta of stream) process.stdout.write(delta.content);
  process.stdout.write("\n");
  console.error(
    `[${stream.finishReason}] ${stream.usage?.completionTokens ?? 0} tokens from ${stream.workerId ?? "?"}, ` +
      `request ${stream.requestId}, ${stream.attempts} attempt(s)`,
  );
} catch (error: unknown) {
  if (!(error instanceof SmolLMError)) throw error;
  console.error(`\n${error.name} (${error.status}${error.reason ? `, ${error.reason}` : ""}): ${error.message} [request ${error.requestId}]`);
  process.exitCode = 1;
} finally {
  client.close();
}
