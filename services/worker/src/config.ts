import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LevelWithSilent } from "pino";
import { Settings, readTlsSettings, type SettingsSource, type TlsFiles } from "@smollm/common";
import { DEFAULT_MODEL, type ModelFallback } from "@smollm/model";

/** GPU backends a worker may ask node-llama-cpp for; `false` is CPU only. */
export type WorkerGpu = "auto" | false | "cuda" | "vulkan";

/**
 * Everything a worker process can be told. The only place that reads flags
 * and environment: each field is `--kebab-name` or `SMOLLM_KEBAB_NAME`.
 */
export interface WorkerConfig {
  /** `--model`: a local GGUF path, an `hf:` URI, or `tiny` (the generated test model). */
  readonly model: string;
  /** `--models-dir`: where `hf:` models are looked up and downloaded. */
  readonly modelsDir: string;
  /** `--model-fallback`: `none` (production: fail clearly) or `tiny` (local dev: generated model, loud warning). */
  readonly modelFallback: ModelFallback;
  /** `--threads`: CPU threads for decoding (also llama's maxThreads). */
  readonly threads: number;
  /** `--gpu`: `auto`, `false`, `cuda` or `vulkan`. */
  readonly gpu: WorkerGpu;
  /** `--slots`: sequences in the context = concurrent generations. */
  readonly slots: number;
  /** `--context-size`: tokens per slot (prompt + completion). */
  readonly contextSize: number;
  /** `--batch-size`: most tokens in one decode (prefill chunk size). */
  readonly batchSize: number;
  /** `--flash-attention`: llama.cpp flash attention. */
  readonly flashAttention: boolean;
  /** `--max-queue`: requests waiting for a slot before new ones are rejected (RESOURCE_EXHAUSTED). */
  readonly maxQueue: number;
  /** `--queue-timeout-ms`: longest wait for a slot before RESOURCE_EXHAUSTED; 0 waits forever. */
  readonly queueTimeoutMs: number;
  /** `--stream-interval-ms`: least time between two text deltas of a stream (tokens in between are coalesced); 0 = every token at once. */
  readonly streamIntervalMs: number;
  /** `--host`: interface the gRPC and ops servers bind. */
  readonly host: string;
  /** `--grpc-port`: WorkerService port; 0 picks a free one. */
  readonly grpcPort: number;
  /** `--ops-port`: /healthz /readyz /metrics port; 0 picks a free one. */
  readonly opsPort: number;
  /** `--advertise-address`: host[:port] gateways dial; the bound gRPC port is used when no port is given. */
  readonly advertiseAddress: string | undefined;
  /** `--worker-id`: unique id in the cluster. */
  readonly workerId: string;
  /** `--redis-url`: cluster state. */
  readonly redisUrl: string;
  /** `--redis-prefix`: namespace of every key (several clusters may share a Redis). */
  readonly redisPrefix: string;
  /** `--kv-block-size`: tokens per KV block in the published prefix-cache index; must equal the scheduler's. */
  readonly kvBlockSize: number;
  /** `--kv-transfer-dir`: scratch space for KV state files moved between workers (block-parallel prefill, prefix fetch). */
  readonly kvTransferDir: string;
  /** `--kv-chunk-bytes`: largest KV chunk sent to another worker (each carries a CRC-32). */
  readonly kvChunkBytes: number;
  /** `--kv-stall-timeout-ms`: a worker sending nothing (not even progress) this long while prefilling or sending KV is given up. */
  readonly kvStallTimeoutMs: number;
  /**
   * `--kv-peer-server-name`: with mutual TLS, the name other workers' certificates carry when it is not
   * their address (like the gateways' `--mtls-server-name`); default the dialled host.
   */
  readonly kvPeerServerName: string | undefined;
  /** `--prefill-step-tokens`: most tokens a prefill block submits per step (capped at the batch size); cancellation and progress are checked between steps. */
  readonly prefillStepTokens: number;
  /** `--heartbeat-ms`: registration refresh period; the registration expires after 3 periods. */
  readonly heartbeatMs: number;
  /** `--drain-timeout-ms`: how long in-flight generations may run after SIGTERM. */
  readonly drainTimeoutMs: number;
  /** `--log-level`. */
  readonly logLevel: LevelWithSilent;
  /**
   * Mutual TLS on the gRPC server: `--mtls-cert`, `--mtls-key` (this
   * identity; its certificate must name the advertised address, or the
   * gateways' `--mtls-server-name`) and `--mtls-ca` (gateways must present a
   * certificate signed by it); PEM files, all or none. Default none (plaintext).
   */
  readonly mtls: TlsFiles | undefined;
}

/** `<repo>/.cache/models`, resolved from this file so it does not depend on the cwd. */
export const DEFAULT_MODELS_DIR = fileURLToPath(new URL("../../../.cache/models", import.meta.url));

export const WORKER_CONFIG_DEFAULTS = {
  model: DEFAULT_MODEL,
  modelFallback: "none",
  // One thread per worker process: node-llama-cpp starts and joins the CPU
  // backend's threads on every decode, which made 2 threads 20-30x slower than
  // 1 for the tiny model (ENGINE-NOTES). Large models on big CPUs should raise it.
  threads: 1,
  gpu: false,
  slots: 8,
  contextSize: 4096,
  batchSize: 512,
  flashAttention: true,
  maxQueue: 64,
  queueTimeoutMs: 30_000,
  // Coalesces tokens that come faster than 100/s into one delta: 10 ms is
  // below what a reader notices, and cuts gRPC, gateway SSE and client work
  // several-fold for fast models; a 3B model on CPU (~10-15 tok/s) is never delayed.
  streamIntervalMs: 10,
  host: "0.0.0.0",
  grpcPort: 50061,
  opsPort: 9461,
  redisUrl: "redis://127.0.0.1:6379",
  redisPrefix: "smollm:",
  kvBlockSize: 16,
  kvChunkBytes: 1 << 20,
  kvStallTimeoutMs: 60_000,
  prefillStepTokens: 1024,
  heartbeatMs: 1_000,
  drainTimeoutMs: 30_000,
  logLevel: "info",
} as const;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const GPUS = ["auto", "false", "cuda", "vulkan"] as const;

/**
 * Reads the worker's configuration; throws a ConfigError listing every
 * problem at once (fail fast at start, never later).
 */
export function loadConfig(
  source: SettingsSource = { argv: process.argv.slice(2), env: process.env },
): WorkerConfig {
  const s = new Settings(source);
  const d = WORKER_CONFIG_DEFAULTS;
  const gpu = s.oneOf("gpu", GPUS, "false");
  const config: WorkerConfig = {
    model: s.string("model", d.model),
    modelsDir: s.string("models-dir", DEFAULT_MODELS_DIR),
    modelFallback: s.oneOf("model-fallback", ["none", "tiny"] as const, d.modelFallback),
    threads: s.int("threads", d.threads, { min: 1, max: 1024 }),
    gpu: gpu === "false" ? false : gpu,
    slots: s.int("slots", d.slots, { min: 1, max: 1024 }),
    contextSize: s.int("context-size", d.contextSize, { min: 64, max: 1 << 20 }),
    batchSize: s.int("batch-size", d.batchSize, { min: 1, max: 1 << 16 }),
    flashAttention: s.bool("flash-attention", d.flashAttention),
    maxQueue: s.int("max-queue", d.maxQueue, { min: 0, max: 1_000_000 }),
    queueTimeoutMs: s.int("queue-timeout-ms", d.queueTimeoutMs, { min: 0 }),
    streamIntervalMs: s.int("stream-interval-ms", d.streamIntervalMs, { min: 0, max: 1_000 }),
    host: s.string("host", d.host),
    grpcPort: s.int("grpc-port", d.grpcPort, { min: 0, max: 65535 }),
    opsPort: s.int("ops-port", d.opsPort, { min: 0, max: 65535 }),
    advertiseAddress: s.optionalString("advertise-address"),
    workerId: s.string("worker-id", `${hostname()}-${process.pid}`),
    redisUrl: s.string("redis-url", d.redisUrl),
    redisPrefix: s.string("redis-prefix", d.redisPrefix),
    kvBlockSize: s.int("kv-block-size", d.kvBlockSize, { min: 1, max: 4096 }),
    kvTransferDir: s.string("kv-transfer-dir", join(tmpdir(), "smollm-kv")),
    kvChunkBytes: s.int("kv-chunk-bytes", d.kvChunkBytes, { min: 4096, max: 16 << 20 }),
    kvStallTimeoutMs: s.int("kv-stall-timeout-ms", d.kvStallTimeoutMs, { min: 100 }),
    prefillStepTokens: s.int("prefill-step-tokens", d.prefillStepTokens, { min: 1, max: 1 << 20 }),
    kvPeerServerName: s.optionalString("kv-peer-server-name"),
    heartbeatMs: s.int("heartbeat-ms", d.heartbeatMs, { min: 50, max: 60_000 }),
    drainTimeoutMs: s.int("drain-timeout-ms", d.drainTimeoutMs, { min: 0 }),
    logLevel: s.oneOf("log-level", LOG_LEVELS, d.logLevel),
    mtls: readTlsSettings(s, { prefix: "mtls", withCa: true }),
  };
  if (!/^redis(s)?:\/\//.test(config.redisUrl)) s.problem(`--redis-url must start with redis:// or rediss://, got "${config.redisUrl}"`);
  if (config.model.trim() === "") s.problem("--model must not be empty");
  if (config.workerId.trim() === "" || /\s/.test(config.workerId)) s.problem(`--worker-id must be non-empty without spaces, got "${config.workerId}"`);
  s.finish();
  return Object.freeze(config);
}
