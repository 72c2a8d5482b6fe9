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
  /** Generate call to its last event, seconds (the worker's end-to-end latency). */
  readonly requestDuration: Histogram;
  /** First sampled token to the last, seconds. */
  readonly decodeDuration: Histogram;
  /** 1 while the worker drains (out of routing, finishing its streams). */
  readonly draining: Gauge;
  /** Sets where the load gauges read from (the engine, once it exists). */
  setLoadSource(source: () => WorkerLoad): void;
  /** Sets the KV cache size in tokens (slots × context), once the context exists. */
  setKvCapacity(tokens: number): void;
}

const BATCH_SEQUENCE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128];
const BATCH_TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

export function createWorkerMetrics(registry: Registry, slots: number): WorkerMetrics {
  let load: (() => WorkerLoad) | undefined;
  let kvCapacity = 0;
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
  new Gauge({
    name: "smollm_worker_kv_cache_capacity_tokens",
    help: "KV cache size in tokens: slots times the context size of a slot.",
    registers,
    collect() {
      this.set(kvCapacity);
    },
  });
  new Gauge({
    name: "smollm_worker_kv_cache_usage_ratio",
    help: "Share of the KV cache held by slots, active or cached (vLLM's kv_cache_usage_perc, as a ratio 0..1).",
    registers,
    collect() {
      this.set(kvCapacity > 0 ? (load?.().kvCellsUsed ?? 0) / kvCapacity : 0);
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
    requestDuration: new Histogram({
      name: "smollm_worker_request_duration_seconds",
      help: "From the Generate call to its last event (queue, prefill and decode).",
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    decodeDuration: new Histogram({
      name: "smollm_worker_decode_duration_seconds",
      help: "From the first sampled token to the last, per generation.",
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    draining: new Gauge({
      name: "smollm_worker_draining",
      help: "1 while the worker drains: out of routing, finishing its streams.",
      registers,
    }),
    setLoadSource(source) {
      load = source;
    },
    setKvCapacity(tokens) {
      kvCapacity = tokens;
    },
  };
}

/** Metrics of KV transfer between workers (block-parallel prefill, prefix fetch); see kv-transfer-service.ts and kv-import.ts. */
export interface KvTransferMetrics {
  /** KV bytes sent to or received from other workers, by kind (`block`, `prefix`). */
  readonly bytes: Counter<"direction" | "kind">;
  /** One block or prefix stream received, from the call to its last byte. */
  readonly transferDuration: Histogram<"kind">;
  /** Blocks this worker prefilled for another worker, by outcome (`ok`, `cancelled`, `error`). */
  readonly blocksServed: Counter<"outcome">;
  /** Blocks being prefilled for other workers now. */
  readonly blocksActive: Gauge;
  /** Generations started from a block-parallel prefill, by outcome (`ok`, `cancelled`, `error`). */
  readonly parallelPrefills: Counter<"outcome">;
  /** Blocks a prefill worker failed to deliver and this worker computed itself. */
  readonly blockFailovers: Counter;
  /** Cached prefixes fetched from another worker, by outcome (`ok`, `skipped`, `failed`). */
  readonly prefixFetches: Counter<"outcome">;
}

export function createKvTransferMetrics(registry: Registry): KvTransferMetrics {
  const registers = [registry];
  return {
    bytes: new Counter({
      name: "smollm_worker_kv_transfer_bytes_total",
      help: "KV bytes moved between workers, by direction (sent, received) and kind (block, prefix).",
      labelNames: ["direction", "kind"] as const,
      registers,
    }),
    transferDuration: new Histogram({
      name: "smollm_worker_kv_transfer_duration_seconds",
      help: "Receiving one KV block or prefix from another worker, computing time included.",
      labelNames: ["kind"] as const,
      buckets: [...LATENCY_BUCKETS_S],
      registers,
    }),
    blocksServed: new Counter({
      name: "smollm_worker_prefill_blocks_served_total",
      help: "Prompt blocks prefilled for another worker, by outcome (ok, cancelled, error).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    blocksActive: new Gauge({
      name: "smollm_worker_prefill_blocks_active",
      help: "Prompt blocks being prefilled for another worker now.",
      registers,
    }),
    parallelPrefills: new Counter({
      name: "smollm_worker_parallel_prefills_total",
      help: "Generations whose prompt KV was assembled from blocks prefilled in parallel, by outcome (ok, cancelled, error).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    blockFailovers: new Counter({
      name: "smollm_worker_prefill_block_failovers_total",
      help: "Blocks another worker failed to deliver that this worker computed itself.",
      registers,
    }),
    prefixFetches: new Counter({
      name: "smollm_worker_prefix_fetches_total",
      help: "Cached prompt prefixes fetched from another worker instead of recomputed, by outcome (ok, skipped, failed).",
      labelNames: ["outcome"] as const,
      registers,
    }),
  };
}
