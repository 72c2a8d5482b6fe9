import { Counter, Gauge, Histogram, createRegistry, type Registry } from "@smollm/common";

/** Every metric of the scheduler, on one registry. */
export function createSchedulerMetrics() {
  const registry: Registry = createRegistry("scheduler");
  return {
    registry,
    decisions: new Counter({
      name: "smollm_scheduler_routing_decisions_total",
      help: "Routing decisions by outcome (the rule that decided, or the rejection reason).",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    decisionSeconds: new Histogram({
      name: "smollm_scheduler_routing_decision_seconds",
      help: "Time to choose a worker, excluding tokenization.",
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01],
      registers: [registry],
    }),
    tokenizeSeconds: new Histogram({
      name: "smollm_scheduler_tokenize_seconds",
      help: "Time to tokenize a rendered prompt.",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    promptTokens: new Counter({
      name: "smollm_scheduler_prompt_tokens_total",
      help: "Prompt tokens routed.",
      registers: [registry],
    }),
    expectedCachedTokens: new Counter({
      name: "smollm_scheduler_prefix_hit_tokens_total",
      help: "Prompt tokens expected to be cached on the chosen worker.",
      registers: [registry],
    }),
    scorerFailures: new Counter({
      name: "smollm_scheduler_scorer_failures_total",
      help: "Scorer errors; routing continued without that scorer.",
      labelNames: ["scorer"] as const,
      registers: [registry],
    }),
    workers: new Gauge({
      name: "smollm_scheduler_workers",
      help: "Workers in the routing table by state.",
      labelNames: ["state"] as const,
      registers: [registry],
    }),
    indexBlocks: new Gauge({
      name: "smollm_scheduler_kv_index_blocks",
      help: "Distinct KV blocks in the prefix index.",
      registers: [registry],
    }),
    indexHealthy: new Gauge({
      name: "smollm_scheduler_kv_index_healthy",
      help: "1 while the prefix index follows the workers' KV events; 0 routes load-only.",
      registers: [registry],
    }),
    eventLagSeconds: new Gauge({
      name: "smollm_scheduler_kv_event_lag_seconds",
      help: "Age of the newest KV event applied to the index when last read (0 when caught up and idle).",
      registers: [registry],
    }),
    eventsApplied: new Counter({
      name: "smollm_scheduler_kv_events_applied_total",
      help: "KV events applied to the prefix index.",
      registers: [registry],
    }),
    errors: new Counter({
      name: "smollm_scheduler_errors_total",
      help: "Route calls that failed, by error code (no worker available, invalid prompt, prompt too long, ...).",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
    registryStale: new Gauge({
      name: "smollm_scheduler_registry_stale",
      help: "1 while the worker registry cannot be read from Redis (routing on last known workers).",
      registers: [registry],
    }),
  };
}

export type SchedulerMetrics = ReturnType<typeof createSchedulerMetrics>;

/** KV-transfer plans attached to routing decisions (see prefill-planner.ts). */
export function createKvPlanMetrics(registry: Registry) {
  return {
    plans: new Counter({
      name: "smollm_scheduler_kv_plans_total",
      help: "Routed requests given a KV-transfer plan, by kind (parallel_prefill, prefix_fetch).",
      labelNames: ["kind"] as const,
      registers: [registry],
    }),
  };
}
