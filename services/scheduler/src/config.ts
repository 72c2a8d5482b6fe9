import { hostname } from "node:os";
import { resolve } from "node:path";
import { Settings, type SettingsSource } from "@smollm/common";
import { DEFAULT_MODEL, type ModelFallback } from "@smollm/model";

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
  /** `--log-level`, default `info`. */
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Grace period for in-flight calls on SIGTERM; `--drain-timeout-ms`, default 10000. */
  readonly drainTimeoutMs: number;
}

/** Parses flags and environment; throws ConfigError listing every problem. */
export function loadSchedulerConfig(source: SettingsSource = { argv: process.argv.slice(2), env: process.env }): SchedulerConfig {
  const s = new Settings(source);
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
    logLevel: s.oneOf("log-level", ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const, "info"),
    drainTimeoutMs: s.int("drain-timeout-ms", 10_000, { min: 0 }),
  };
  s.finish();
  return Object.freeze(config);
}
