import { Counter, Gauge, Histogram, LATENCY_BUCKETS_S, TOKEN_LATENCY_BUCKETS_S, type Registry } from "@smollm/common";

/** Load figures read when /metrics is scraped (cheaper than updating gauges per token). */
export interface WorkerLoad {
  activeSlots: number;
  queued: number;
  kvCellsUsed: number;
}

/** Every metric of the worker, all `smollm_worker_…`, units in the names. */
export interface WorkerMetrics {
  readonly registry: Registry;
  readonly decodeBatchSequences: Histogram;
  readonly decodeBatchTokens: Histogram;
  readonly promptTokens: Counter;
  readonly cachedPromptTokens: Counter;
  readonly generatedTokens: Counter;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly prefillDuration: Histogram;
  readonly queueWait: Histogram;
  readonly requests: Counter<"finish_reason">;
  readonly errors: Counter<"code">;
  /** Sets where the load gauges read from (the engine, once it exists). */
  setLoadSource(source: () => WorkerLoad): void;
}

const BATCH_SEQUENCE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128];
const BATCH_TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

export function createWorkerMetrics(registry: Registry, slots: number): WorkerMetrics {
  let load: (() => WorkerLoad) | undefined;
  const registers = [registry];
  new Gauge({
    name: "smollm_worker_slots",
    help: "Sequences (concurrent generations) the worker's context has.",
    registers,
    collect() {
      this.set(slots);
    },
  });
  new Gauge({
    name: "smollm_worker_active_slots",
    help: "Slots generating now.",
    registers,
    collect() {
      this.set(load?.().activeSlots ?? 0);
    },
  });
  new Gauge({
    name: "smollm_worker_queued_requests",
    help: "Requests waiting for a free slot.",
    registers,
    collect() {
      this.set(load?.().queued ?? 0);
    },
  });
  new Gauge({
    name: "smollm_worker_kv_cells_used",
    help: "KV cache cells (tokens) held by all slots, active or cached.",
    registers,
    collect() {
      this.set(load?.().kvCellsUsed ?? 0);
    },
  });
  return {
    registry,
    decodeBatchSequences: new Histogram({
      name: "smollm_worker_decode_batch_sequences",
      help: "Distinct sequences in each llama.cpp decode batch (continuous batching occupancy).",
      buckets: BATCH_SEQUENCE_BUCKETS,
      registers,
    }),
    decodeBatchTokens: new Histogram({
      name: "smollm_worker_decode_batch_tokens",
      help: "Tokens in each llama.cpp decode batch.",
      buckets: BATCH_TOKEN_BUCKETS,
      registers,
    }),
    promptTokens: new Counter({
      name: "smollm_worker_prompt_tokens_total",
      help: "Prompt tokens of started generations.",
      registers,
    }),
    cachedPromptTokens: new Counter({
      name: "smollm_worker_cached_prompt_tokens_total",
      help: "Prompt tokens whose KV was reused from the slot instead of recomputed.",
      registers,
    }),
    generatedTokens: new Counter({
      name: "smollm_worker_generated_tokens_total",
      help: "Tokens sampled (end-of-generation tokens included).",
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "smollm_worker_time_to_first_token_seconds",
      help: "From the Generate call to the first sampled token (queue and prefill included).",
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    interTokenLatency: new Histogram({
      name: "smollm_worker_inter_token_latency_seconds",
      help: "Time between consecutive sampled tokens of one generation.",
      buckets: [...TOKEN_LATENCY_BUCKETS_S],
      registers,
    }),
    prefillDuration: new Histogram({
      name: "smollm_worker_prefill_duration_seconds",
      help: "Evaluating the uncached prompt suffix up to the first token.",
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    queueWait: new Histogram({
      name: "smollm_worker_queue_wait_seconds",
      help: "Time requests waited for a free slot.",
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    requests: new Counter({
      name: "smollm_worker_requests_total",
      help: "Generations that ended, by finish reason (stop, length, cancelled).",
      labelNames: ["finish_reason"] as const,
      registers,
    }),
    errors: new Counter({
      name: "smollm_worker_errors_total",
      help: "Generate calls that failed, by error code.",
      labelNames: ["code"] as const,
      registers,
    }),
    setLoadSource(source) {
      load = source;
    },
  };
}
