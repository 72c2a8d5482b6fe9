import { Counter, Gauge, Histogram, LATENCY_BUCKETS_S, TOKEN_LATENCY_BUCKETS_S, createRegistry, type Registry } from "@smollm/common";

/** Every metric the gateway exports, on one registry (one per gateway instance, so tests can embed several). */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** Chat completion requests by outcome `status` (HTTP status; for a stream that fails after its headers, the status its error maps to) and `stream`. */
  readonly requests: Counter<"status" | "stream">;
  /** Chat completion requests being served. */
  readonly inFlight: Gauge;
  /** Request arrival to the first completion token, seconds. */
  readonly timeToFirstToken: Histogram<"stream">;
  /** Time between completion tokens, seconds (a delta of n tokens counts once, at its average). */
  readonly interTokenLatency: Histogram;
  /** Request arrival to the last byte, seconds. */
  readonly requestDuration: Histogram<"stream">;
  readonly promptTokens: Counter;
  readonly completionTokens: Counter;
  /** Prompt tokens the worker found in its KV cache. */
  readonly cachedPromptTokens: Counter;
  /** Requests moved to another worker before their first token, by the error `code` that caused it. */
  readonly retries: Counter<"code">;
  /** Streams failed because their worker went silent mid-stream (`--worker-stall-timeout-ms`). */
  readonly workerStalls: Counter;
  /** Workers ejected from this gateway's routing after it failed to reach them (`--worker-eject-ms`). */
  readonly workerEjections: Counter;
  /** Failed requests by cluster error `code` (client cancellations included as `cancelled`). */
  /** Public gRPC calls by method and status code. */
  readonly grpcRequests: Counter<"method" | "code">;
  readonly errors: Counter<"code">;
  /** Requests refused by authentication, by `reason` (missing_key, invalid_key, disabled_key). */
  readonly authFailures: Counter<"reason">;
  /** Requests refused by a per-key limit, by key name and `limit` (requests, streams). */
  readonly rateLimited: Counter<"api_key" | "limit">;
  /** Time to authenticate and check the limits of a request (the Redis round trip), seconds. */
  readonly admissionDuration: Histogram;
  /** API keys in force. */
  readonly apiKeys: Gauge;
  /** Reloads of the API keys file by `outcome` (ok, failed). */
  readonly apiKeysReloads: Counter<"outcome">;
  /** 1 while Redis is unreachable and limits are enforced per gateway (or refused). */
  readonly rateLimiterDegraded: Gauge;
  /** Redis calls of the rate limiter that failed or timed out. */
  readonly rateLimiterRedisErrors: Counter;
}

/** Creates the gateway's registry and metrics. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = createRegistry("gateway");
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: "smollm_gateway_requests_total",
      help: "Chat completion requests by outcome HTTP status and streaming.",
      labelNames: ["status", "stream"] as const,
      registers,
    }),
    inFlight: new Gauge({
      name: "smollm_gateway_in_flight_requests",
      help: "Chat completion requests being served.",
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "smollm_gateway_time_to_first_token_seconds",
      help: "Time from request arrival to the first completion token.",
      labelNames: ["stream"] as const,
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    interTokenLatency: new Histogram({
      name: "smollm_gateway_inter_token_latency_seconds",
      help: "Time between completion tokens as seen by the gateway.",
      buckets: [...TOKEN_LATENCY_BUCKETS_S],
      registers,
    }),
    requestDuration: new Histogram({
      name: "smollm_gateway_request_duration_seconds",
      help: "Time from request arrival to the end of the response.",
      labelNames: ["stream"] as const,
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    promptTokens: new Counter({
      name: "smollm_gateway_prompt_tokens_total",
      help: "Prompt tokens of completed requests.",
      registers,
    }),
    completionTokens: new Counter({
      name: "smollm_gateway_completion_tokens_total",
      help: "Completion tokens generated.",
      registers,
    }),
    cachedPromptTokens: new Counter({
      name: "smollm_gateway_cached_prompt_tokens_total",
      help: "Prompt tokens served from a worker's KV cache.",
      registers,
    }),
    retries: new Counter({
      name: "smollm_gateway_retries_total",
      help: "Requests moved to another worker before their first token.",
      labelNames: ["code"] as const,
      registers,
    }),
    workerStalls: new Counter({
      name: "smollm_gateway_worker_stalls_total",
      help: "Streams failed because their worker sent nothing for --worker-stall-timeout-ms after it had streamed text.",
      registers,
    }),
    workerEjections: new Counter({
      name: "smollm_gateway_worker_ejections_total",
      help: "Workers this gateway ejected from its routing for --worker-eject-ms after failing to reach them (unavailable, ack timeout, silent mid-stream).",
      registers,
    }),
    grpcRequests: new Counter({
      name: "smollm_gateway_grpc_requests_total",
      help: "Public gRPC API calls by method and final status code name.",
      labelNames: ["method", "code"] as const,
      registers,
    }),
    errors: new Counter({
      name: "smollm_gateway_errors_total",
      help: "Failed chat completion requests by error code.",
      labelNames: ["code"] as const,
      registers,
    }),
    authFailures: new Counter({
      name: "smollm_gateway_auth_failures_total",
      help: "Requests refused by API key authentication, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    rateLimited: new Counter({
      name: "smollm_gateway_rate_limited_total",
      help: "Requests refused by a per-key limit, by API key name and limit (requests, streams).",
      labelNames: ["api_key", "limit"] as const,
      registers,
    }),
    admissionDuration: new Histogram({
      name: "smollm_gateway_admission_duration_seconds",
      help: "Time to authenticate a request and check its key's limits (Redis round trip included).",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
      registers,
    }),
    apiKeys: new Gauge({
      name: "smollm_gateway_api_keys",
      help: "API keys in force (0 with authentication off).",
      registers,
    }),
    apiKeysReloads: new Counter({
      name: "smollm_gateway_api_keys_reloads_total",
      help: "Reloads of the API keys file by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    rateLimiterDegraded: new Gauge({
      name: "smollm_gateway_rate_limiter_degraded",
      help: "1 while Redis is unreachable and per-key limits are enforced per gateway (or refused).",
      registers,
    }),
    rateLimiterRedisErrors: new Counter({
      name: "smollm_gateway_rate_limiter_redis_errors_total",
      help: "Rate limiter calls to Redis that failed or timed out.",
      registers,
    }),
  };
}
