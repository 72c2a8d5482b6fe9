import type { ServiceHandlers, publicApi } from "@smollm/proto";
import type { GatewayMetrics } from "./metrics.ts";

type ChatHandlers = ServiceHandlers<(typeof publicApi.ChatService)["method"]>;

/**
 * Times the public gRPC chat calls into the same histograms as HTTP, so the
 * gateway's time-to-first-token and end-to-end latency cover all traffic:
 * a stream's first message with text is its first token; a call's duration
 * runs to its last message or its error. (Inter-token latency stays HTTP's:
 * gRPC deltas do not say how many tokens they hold.)
 */
export function withLatencyMetrics(handlers: ChatHandlers, metrics: GatewayMetrics): ChatHandlers {
  return {
    ...handlers,
    createChatCompletion: async (request, context) => {
      const startedAt = performance.now();
      try {
        return await handlers.createChatCompletion(request, context);
      } finally {
        metrics.requestDuration.observe({ stream: "false" }, (performance.now() - startedAt) / 1000);
      }
    },
    streamChatCompletion: async function* (request, context) {
      const startedAt = performance.now();
      let first = true;
      try {
        for await (const message of handlers.streamChatCompletion(request, context)) {
          if (first && ((message.content ?? "") !== "" || (message.reasoningContent ?? "") !== "")) {
            first = false;
            metrics.timeToFirstToken.observe({ stream: "true" }, (performance.now() - startedAt) / 1000);
          }
          yield message;
        }
      } finally {
        metrics.requestDuration.observe({ stream: "true" }, (performance.now() - startedAt) / 1000);
      }
    },
  };
}
