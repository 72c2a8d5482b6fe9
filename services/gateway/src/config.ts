import type { LevelWithSilent } from "pino";
import { Settings, readTlsSettings, type SettingsSource, type TlsFiles } from "@smollm/common";

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
  /**
   * A worker must acknowledge a request (gRPC response headers, sent before it
   * queues for a slot) within this, else the request goes to another worker as
   * if that one were unavailable: a hung worker stays registered until its
   * heartbeat expires [worker-ack-timeout-ms]; default 5 000, 0 disables.
   */
  readonly workerAckTimeoutMs: number;
  /**
   * Once a worker has streamed text, the longest it may stay silent before
   * the stream fails as `unavailable` (partial text kept) and the call is
   * cancelled: a worker hung mid-stream is noticed long before the request
   * deadline. Waiting for a slow client does not count [worker-stall-timeout-ms];
   * default 30 000, 0 disables.
   */
  readonly workerStallTimeoutMs: number;
  /**
   * How long a worker this gateway failed to reach (unavailable, no ack,
   * silent mid-stream) is avoided in its routing: the scheduler chooses it
   * only when no other worker fits [worker-eject-ms]; default 5 000, 0 disables.
   */
  readonly workerEjectMs: number;
  /** Deadline of one routing call to the scheduler, plus 5 ms per KiB of prompt (tokenizing) [route-timeout-ms]; default 5 000. */
  readonly routeTimeoutMs: number;
  /**
   * How long a request keeps retrying routing, with backoff (50 ms doubling to
   * 1 s), while the scheduler is unreachable or has no worker to offer
   * (restarts, Redis flushed, network faults) [route-retry-ms]; default 10 000, 0: no retry.
   */
  readonly routeRetryMs: number;
  /** How long a stream may wait for a client that stopped reading before it is cancelled [write-stall-timeout-ms]; default 30 000. */
  readonly writeStallTimeoutMs: number;
  /** Grace period for in-flight requests after SIGTERM [drain-timeout-ms]; default 30 000. */
  readonly drainTimeoutMs: number;
  /** Log level [log-level]; default `info`. */
  readonly logLevel: LevelWithSilent;
  /**
   * API keys file [api-keys-file]; default none: authentication is off (local
   * development; a warning is logged). Lines `[name:]sha256:<hex>[:rpm[:streams]]`
   * or JSON (see api-keys.ts); SHA-256 hashes only, never keys. Read at start,
   * on SIGHUP and when it changes.
   */
  readonly apiKeysFile: string | undefined;
  /** How often the API keys file is checked for changes [api-keys-reload-ms]; default 5000, 0: SIGHUP only. */
  readonly apiKeysReloadMs: number;
  /** Redis shared by the gateways for per-key limits [redis-url]; default `redis://127.0.0.1:6379`; used only with API keys. */
  readonly redisUrl: string;
  /** Prefix of every Redis key, the cluster's [redis-prefix]; default `smollm:`. */
  readonly redisPrefix: string;
  /** Requests per minute of a key that sets none [rate-limit-rpm]; default 0 (unlimited). */
  readonly rateLimitRpm: number;
  /** Requests a key may send at once before its per-minute rate applies, when it sets none [rate-limit-burst]; default 0 (= its rpm). */
  readonly rateLimitBurst: number;
  /** Chat completions in flight per key, over all gateways, when it sets none [max-concurrent-streams]; default 0 (unlimited). */
  readonly maxConcurrentStreams: number;
  /** A crashed gateway's stream slots come back after this long [stream-lease-ttl-ms]; default 30 000. */
  readonly streamLeaseTtlMs: number;
  /**
   * When Redis is unreachable [rate-limit-on-redis-error]: `local` (default)
   * enforces each key's limits per gateway process (fail-open to per-replica
   * limits: keys are still checked, N replicas allow up to N× the limits);
   * `reject` answers 503 to keys that have limits (fail-closed).
   */
  readonly rateLimitOnRedisError: "local" | "reject";
  /**
   * TLS for the public endpoints, HTTP (then HTTPS, ops paths included) and
   * gRPC [tls-cert, tls-key: PEM files]; default none (plaintext, e.g. behind
   * a TLS-terminating ingress).
   */
  readonly tls: TlsFiles | undefined;
  /**
   * Mutual TLS to the scheduler and the workers [mtls-ca, mtls-cert,
   * mtls-key: PEM files, all or none]: this identity is presented, and their
   * certificates must chain to the CA. Default none (plaintext).
   */
  readonly mtls: TlsFiles | undefined;
  /** Name the scheduler's and workers' certificates carry, when not their dialled host [mtls-server-name]; default the host. */
  readonly mtlsServerName: string | undefined;
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
    workerAckTimeoutMs: s.int("worker-ack-timeout-ms", 5_000, { min: 0 }),
    workerStallTimeoutMs: s.int("worker-stall-timeout-ms", 30_000, { min: 0 }),
    workerEjectMs: s.int("worker-eject-ms", 5_000, { min: 0 }),
    routeTimeoutMs: s.int("route-timeout-ms", 5_000, { min: 1 }),
    routeRetryMs: s.int("route-retry-ms", 10_000, { min: 0 }),
    writeStallTimeoutMs: s.int("write-stall-timeout-ms", 30_000, { min: 1 }),
    drainTimeoutMs: s.int("drain-timeout-ms", 30_000, { min: 0 }),
    logLevel: s.oneOf("log-level", LOG_LEVELS, "info"),
    apiKeysFile: s.optionalString("api-keys-file"),
    apiKeysReloadMs: s.int("api-keys-reload-ms", 5_000, { min: 0 }),
    redisUrl: s.string("redis-url", "redis://127.0.0.1:6379"),
    redisPrefix: s.string("redis-prefix", "smollm:"),
    rateLimitRpm: s.int("rate-limit-rpm", 0, { min: 0 }),
    rateLimitBurst: s.int("rate-limit-burst", 0, { min: 0 }),
    maxConcurrentStreams: s.int("max-concurrent-streams", 0, { min: 0 }),
    streamLeaseTtlMs: s.int("stream-lease-ttl-ms", 30_000, { min: 1_000 }),
    rateLimitOnRedisError: s.oneOf("rate-limit-on-redis-error", ["local", "reject"] as const, "local"),
    tls: readTlsSettings(s, { prefix: "tls", withCa: false }),
    mtls: readTlsSettings(s, { prefix: "mtls", withCa: true }),
    mtlsServerName: s.optionalString("mtls-server-name"),
  };
  if (!/^redis(s)?:\/\//.test(config.redisUrl)) s.problem(`--redis-url (SMOLLM_REDIS_URL) must start with redis:// or rediss://, got "${config.redisUrl}"`);
  if (!/^[^\s]+:\d+$/.test(config.schedulerAddress) && !config.schedulerAddress.startsWith("unix:")) {
    s.problem(`--scheduler-address (SMOLLM_SCHEDULER_ADDRESS) must be host:port, got "${config.schedulerAddress}"`);
  }
  if (config.modelId.trim() === "") s.problem("--model (SMOLLM_MODEL) must not be empty");
  s.finish();
  return Object.freeze({ ...config, modelAliases: Object.freeze([...config.modelAliases]) });
}
