import { hostname } from "node:os";
import { resolve } from "node:path";
import { Settings, readTlsSettings, type SettingsSource, type TlsFiles } from "@smollm/common";
import { DEFAULT_MODEL, type ModelFallback } from "@smollm/model";
import { parseAnchorRule, type AnchorRule } from "./prefill-planner.ts";

/** The scheduler's configuration; every field has a flag `--name` and an env `SMOLLM_NAME`. */
export interface SchedulerConfig {
  /** Bind address; `--host`, default `127.0.0.1`. */
  readonly host: string;
  /** gRPC port; `--grpc-port`, default 50051 (0 picks a free port). */
  readonly grpcPort: number;
  /** /healthz, /readyz, /metrics port; `--ops-port`, default 9091 (0 picks a free port). */
  readonly opsPort: number;
  /** Scheduler id in logs and metrics; `--scheduler-id`, default `<hostname>-<pid>`. */
  readonly schedulerId: string;
  /** Model whose tokenizer routes prompts (same as the workers'); `--model`, default SmolLM3-3B Q4_K_M. */
  readonly model: string;
  /** `--models-dir`, default `<cwd>/.cache/models`. */
  readonly modelsDir: string;
  /** `--model-fallback none|tiny`, default `none`. */
  readonly modelFallback: ModelFallback;
  /** `--redis-url`, default `redis://127.0.0.1:6379`. */
  readonly redisUrl: string;
  /** Prefix of every Redis key; `--redis-prefix`, default `smollm:`. */
  readonly redisPrefix: string;
  /** How often the worker registry is re-read; `--registry-refresh-ms`, default 500. */
  readonly registryRefreshMs: number;
  /** `cache_aware` (scorers: prefix, load, KV) or `round_robin` (baseline); `--policy`, default `cache_aware`. */
  readonly policy: "cache_aware" | "round_robin";
  /** Weight of the KV-cache prefix scorer; `--weight-prefix`, default 2. */
  readonly weightPrefix: number;
  /** Cached fraction of a prompt below which locality is ignored; `--prefix-min-ratio`, default 0.5. */
  readonly prefixMinRatio: number;
  /** Tokens per KV block for the prefix index; must match the workers'; `--kv-block-size`, default 16. */
  readonly kvBlockSize: number;
  /** Load-imbalance guard: busy-sequence gap above which locality is ignored; `--imbalance-abs`, default 8. */
  readonly imbalanceAbs: number;
  /** Load-imbalance guard: busiest/idlest ratio above which locality is ignored; `--imbalance-rel`, default 1.5. */
  readonly imbalanceRel: number;
  /** Weight of the load scorer; `--weight-load`, default 1. */
  readonly weightLoad: number;
  /** Weight of the free-KV scorer; `--weight-kv`, default 0.5. */
  readonly weightKv: number;
  /**
   * Block-parallel prefill (docs/parallel-prefill.md): prompts of at least this many tokens are
   * prefilled in blocks on several workers, unless the request asks for exact prefill;
   * `--parallel-prefill-min-tokens`, default 16384, 0 = never.
   */
  readonly parallelPrefillMinTokens: number;
  /** Most workers one prompt's prefill is split over, the decoder included; `--parallel-prefill-max-workers`, default 4. */
  readonly parallelPrefillMaxWorkers: number;
  /** Smallest block, in tokens; `--parallel-prefill-min-block-tokens`, default 2048. */
  readonly parallelPrefillMinBlockTokens: number;
  /**
   * Largest block, in tokens: longer prompts give each worker several blocks (less work in
   * total, more approximation); `--parallel-prefill-max-block-tokens`, default 0 (one block per worker).
   */
  readonly parallelPrefillMaxBlockTokens: number;
  /**
   * What each block attends to before itself: `full` (everything before it: exact), `first-block`
   * (Star Attention's anchor) or a token count (the prompt's first N tokens);
   * `--parallel-prefill-anchor`, default 4096.
   */
  readonly parallelPrefillAnchor: AnchorRule;
  /**
   * Fetch a cached prefix's KV from the worker holding it when it holds at least this many
   * tokens more than the chosen worker; `--prefix-fetch-min-tokens`, default 2048, 0 = never.
   */
  readonly prefixFetchMinTokens: number;
  /** `--log-level`, default `info`. */
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Grace period for in-flight calls on SIGTERM; `--drain-timeout-ms`, default 10000. */
  readonly drainTimeoutMs: number;
  /**
   * Longest prompt routed, in tokens; longer ones are refused (HTTP 400,
   * `context_length_exceeded`) before reaching a worker; `--max-prompt-tokens`,
   * default 0 (only the workers' context size limits it).
   */
  readonly maxPromptTokens: number;
  /**
   * Mutual TLS on the gRPC server: `--mtls-cert`, `--mtls-key` (this
   * identity) and `--mtls-ca` (clients must present a certificate signed by
   * it), PEM files, all or none; default none (plaintext).
   */
  readonly mtls: TlsFiles | undefined;
}

/** Parses flags and environment; throws ConfigError listing every problem. */
export function loadSchedulerConfig(source: SettingsSource = { argv: process.argv.slice(2), env: process.env }): SchedulerConfig {
  const s = new Settings(source);
  const anchorText = s.string("parallel-prefill-anchor", "4096");
  const config: SchedulerConfig = {
    host: s.string("host", "127.0.0.1"),
    grpcPort: s.int("grpc-port", 50051, { min: 0, max: 65535 }),
    opsPort: s.int("ops-port", 9091, { min: 0, max: 65535 }),
    schedulerId: s.string("scheduler-id", `${hostname()}-${process.pid}`),
    model: s.string("model", DEFAULT_MODEL),
    modelsDir: resolve(s.string("models-dir", ".cache/models")),
    modelFallback: s.oneOf("model-fallback", ["none", "tiny"] as const, "none"),
    redisUrl: s.string("redis-url", "redis://127.0.0.1:6379"),
    redisPrefix: s.string("redis-prefix", "smollm:"),
    registryRefreshMs: s.int("registry-refresh-ms", 500, { min: 50, max: 60_000 }),
    policy: s.oneOf("policy", ["cache_aware", "round_robin"] as const, "cache_aware"),
    weightPrefix: s.number("weight-prefix", 2, { min: 0 }),
    prefixMinRatio: s.number("prefix-min-ratio", 0.5, { min: 0, max: 1 }),
    kvBlockSize: s.int("kv-block-size", 16, { min: 1, max: 4096 }),
    imbalanceAbs: s.number("imbalance-abs", 8, { min: 0 }),
    imbalanceRel: s.number("imbalance-rel", 1.5, { min: 1 }),
    weightLoad: s.number("weight-load", 1, { min: 0 }),
    weightKv: s.number("weight-kv", 0.5, { min: 0 }),
    parallelPrefillMinTokens: s.int("parallel-prefill-min-tokens", 16_384, { min: 0 }),
    parallelPrefillMaxWorkers: s.int("parallel-prefill-max-workers", 4, { min: 1, max: 64 }),
    parallelPrefillMinBlockTokens: s.int("parallel-prefill-min-block-tokens", 2048, { min: 64 }),
    parallelPrefillMaxBlockTokens: s.int("parallel-prefill-max-block-tokens", 0, { min: 0 }),
    parallelPrefillAnchor: parseAnchorRule(anchorText) ?? { kind: "full" },
    prefixFetchMinTokens: s.int("prefix-fetch-min-tokens", 2048, { min: 0 }),
    logLevel: s.oneOf("log-level", ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const, "info"),
    drainTimeoutMs: s.int("drain-timeout-ms", 10_000, { min: 0 }),
    maxPromptTokens: s.int("max-prompt-tokens", 0, { min: 0 }),
    mtls: readTlsSettings(s, { prefix: "mtls", withCa: true }),
  };
  if (parseAnchorRule(anchorText) === undefined) {
    s.problem(`--parallel-prefill-anchor must be full, first-block or a token count, got "${anchorText}"`);
  }
  s.finish();
  return Object.freeze(config);
}
