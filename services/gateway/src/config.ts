import type { LevelWithSilent } from "pino";
import { Settings, type SettingsSource } from "@smollm/common";

/**
 * The gateway's whole configuration. Every field is read here and only here,
 * from `--flag value` or `SMOLLM_FLAG` (flag names in brackets), with the
 * defaults shown.
 */
export interface GatewayConfig {
  /** Interface to listen on [host]; default `0.0.0.0`. */
  readonly host: string;
  /** HTTP port for the API and the ops endpoints (/healthz, /readyz, /metrics) [port]; default 8080, 0 picks a free one. */
  readonly port: number;
  /** Scheduler gRPC address `host:port` [scheduler-address]; default `127.0.0.1:50051`. */
  readonly schedulerAddress: string;
  /** Port of the public gRPC API (`smollm.v1.ChatService` + health); `--grpc-port`, default 50050 (0 picks a free port, -1 disables it). */
  readonly grpcPort: number;
  /** Model id served and echoed in responses [model]; default `SmolLM3-3B`. */
  readonly modelId: string;
  /** Other names accepted in `model` (comma-separated) [model-aliases]; default none. */
  readonly modelAliases: readonly string[];
  /** Largest request body in bytes [max-body-bytes]; default 4 MiB. Larger → 413. */
  readonly maxBodyBytes: number;
  /** Completion token limit when the request sets none, capped by the worker's context [default-max-tokens]; default 4096. */
  readonly defaultMaxTokens: number;
  /** Sampling temperature when the request sets none [default-temperature]; default 0.6 (SmolLM3's recommendation). */
  readonly defaultTemperature: number;
  /** Nucleus sampling when the request sets none [default-top-p]; default 0.95 (SmolLM3's recommendation). */
  readonly defaultTopP: number;
  /** Deadline of a whole request, routing included [request-timeout-ms]; default 600 000 (10 min). */
  readonly requestTimeoutMs: number;
  /** Times a request moves to another worker when its worker is unavailable or full before the first token [max-retries]; default 2. */
  readonly maxRetries: number;
  /** How long a stream may wait for a client that stopped reading before it is cancelled [write-stall-timeout-ms]; default 30 000. */
  readonly writeStallTimeoutMs: number;
  /** Grace period for in-flight requests after SIGTERM [drain-timeout-ms]; default 30 000. */
  readonly drainTimeoutMs: number;
  /** Log level [log-level]; default `info`. */
  readonly logLevel: LevelWithSilent;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const satisfies readonly LevelWithSilent[];

/**
 * Reads the configuration from flags and environment.
 * @throws ConfigError listing every problem (unknown flags included).
 */
export function loadConfig(
  source: SettingsSource = { argv: process.argv.slice(2), env: process.env },
): GatewayConfig {
  const s = new Settings(source);
  const config: GatewayConfig = {
    host: s.string("host", "0.0.0.0"),
    port: s.int("port", 8080, { min: 0, max: 65_535 }),
    schedulerAddress: s.string("scheduler-address", "127.0.0.1:50051"),
    grpcPort: s.int("grpc-port", 50_050, { min: -1, max: 65_535 }),
    modelId: s.string("model", "SmolLM3-3B"),
    modelAliases: s.list("model-aliases", []),
    maxBodyBytes: s.int("max-body-bytes", 4 * 1024 * 1024, { min: 1024 }),
    defaultMaxTokens: s.int("default-max-tokens", 4096, { min: 1, max: 0xffff_ffff }),
    defaultTemperature: s.number("default-temperature", 0.6, { min: 0, max: 2 }),
    defaultTopP: s.number("default-top-p", 0.95, { min: 0, max: 1 }),
    requestTimeoutMs: s.int("request-timeout-ms", 600_000, { min: 1 }),
    maxRetries: s.int("max-retries", 2, { min: 0, max: 16 }),
    writeStallTimeoutMs: s.int("write-stall-timeout-ms", 30_000, { min: 1 }),
    drainTimeoutMs: s.int("drain-timeout-ms", 30_000, { min: 0 }),
    logLevel: s.oneOf("log-level", LOG_LEVELS, "info"),
  };
  if (!/^[^\s]+:\d+$/.test(config.schedulerAddress) && !config.schedulerAddress.startsWith("unix:")) {
    s.problem(`--scheduler-address (SMOLLM_SCHEDULER_ADDRESS) must be host:port, got "${config.schedulerAddress}"`);
  }
  if (config.modelId.trim() === "") s.problem("--model (SMOLLM_MODEL) must not be empty");
  s.finish();
  return Object.freeze({ ...config, modelAliases: Object.freeze([...config.modelAliases]) });
}
