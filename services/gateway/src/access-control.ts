import type { Logger } from "pino";
import { ClusterKeys, closeRedis, connectRedis, whenRedisReady, type Redis } from "@smollm/cluster-state";
import { ApiError } from "./api-error.ts";
import { ApiKeyStore, type ApiKeyEntry } from "./api-keys.ts";
import type { GatewayConfig } from "./config.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { RateLimiter, type KeyLimits } from "./rate-limiter.ts";

/** An admitted request: who sent it, headers to add to the response, and its stream slot to give back. */
export interface Admission {
  /** The API key's name; undefined with authentication off. */
  readonly keyName: string | undefined;
  /** `x-ratelimit-*` response headers (OpenAI's names), when the key has a request rate limit. */
  readonly headers: Readonly<Record<string, string>>;
  /** Gives the concurrent-stream slot back; idempotent. Call when the response has ended. */
  release(): void;
}

const OPEN: Admission = { keyName: undefined, headers: {}, release: () => undefined };

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Who may use the gateway and how much: API keys (SHA-256 hashes from a
 * file, reloaded on change or SIGHUP) sent as `Authorization: Bearer <key>`
 * (HTTP header or gRPC metadata), and each key's request rate and concurrent
 * streams, shared by every gateway through Redis. Without a keys file
 * authentication is off and nothing is limited (local development).
 *
 * Refusals are ApiErrors, mapped like every other error at each edge: 401
 * (missing or unknown key), 403 (disabled key), 429 with `Retry-After` (a
 * limit), 503 (Redis down with `--rate-limit-on-redis-error reject`).
 */
export class AccessControl {
  readonly #keys: ApiKeyStore | undefined;
  readonly #limiter: RateLimiter | undefined;
  readonly #redis: Redis | undefined;
  readonly #config: GatewayConfig;
  readonly #metrics: GatewayMetrics;

  private constructor(config: GatewayConfig, metrics: GatewayMetrics, keys?: ApiKeyStore, redis?: Redis, limiter?: RateLimiter) {
    this.#config = config;
    this.#metrics = metrics;
    this.#keys = keys;
    this.#redis = redis;
    this.#limiter = limiter;
  }

  /**
   * Reads the keys file (a bad one fails the start) and connects to Redis for
   * the limits (never fails: Redis being away degrades as configured).
   */
  static async start(config: GatewayConfig, logger: Logger, metrics: GatewayMetrics): Promise<AccessControl> {
    if (config.apiKeysFile === undefined) {
      logger.warn("no --api-keys-file: authentication is OFF, anyone who reaches the gateway can use it (fine for local development only)");
      metrics.apiKeys.set(0);
      return new AccessControl(config, metrics);
    }
    const keys = await ApiKeyStore.open({
      file: config.apiKeysFile,
      logger,
      reloadMs: config.apiKeysReloadMs,
      onReload: (outcome, n) => {
        metrics.apiKeysReloads.inc({ outcome });
        metrics.apiKeys.set(n);
      },
    });
    metrics.apiKeys.set(keys.size);
    if (keys.size === 0) logger.warn({ file: config.apiKeysFile }, "the API keys file holds no key: every request will be refused (401)");
    logger.info({ file: config.apiKeysFile, keys: keys.size, names: keys.names() }, "API keys loaded");
    const redis = connectRedis({ url: config.redisUrl, logger, name: "gateway-rate-limits" });
    const limiter = new RateLimiter({
      redis,
      keys: new ClusterKeys(config.redisPrefix),
      logger,
      leaseTtlMs: config.streamLeaseTtlMs,
      onRedisError: config.rateLimitOnRedisError,
      onRedisFailure: () => metrics.rateLimiterRedisErrors.inc(),
    });
    metrics.rateLimiterDegraded.set(0);
    // Limits work without Redis (see RateLimiter); waiting a little only spares the first requests the fallback.
    await whenRedisReady(redis, 2_000);
    return new AccessControl(config, metrics, keys, redis, limiter);
  }

  /** Whether requests must carry an API key. */
  get enabled(): boolean {
    return this.#keys !== undefined;
  }

  /**
   * Checks the `authorization` value (HTTP header or gRPC metadata).
   * Returns the key's entry, or undefined with authentication off.
   * @throws ApiError 401 (missing or unknown key) or 403 (disabled key).
   */
  authenticate(authorization: string | undefined): ApiKeyEntry | undefined {
    const keys = this.#keys;
    if (keys === undefined) return undefined;
    const presented = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
    if (presented === undefined) {
      this.#metrics.authFailures.inc({ reason: "missing_key" });
      throw new ApiError(
        "unauthenticated",
        authorization === undefined
          ? "You didn't provide an API key. Send it in the Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY)."
          : "Malformed Authorization header: expected `Bearer YOUR_KEY`.",
        { apiCode: authorization === undefined ? "missing_api_key" : "invalid_api_key" },
      );
    }
    const entry = keys.lookup(presented);
    if (entry === undefined) {
      this.#metrics.authFailures.inc({ reason: "invalid_key" });
      throw new ApiError("unauthenticated", "Incorrect API key provided.", { apiCode: "invalid_api_key" });
    }
    if (entry.disabled) {
      this.#metrics.authFailures.inc({ reason: "disabled_key" });
      throw new ApiError("permission_denied", `The API key '${entry.name}' is disabled.`, { apiCode: "api_key_disabled" });
    }
    return entry;
  }

  /**
   * Authenticates a chat completion and takes one request token and one
   * stream slot of its key. The caller must `release()` the admission when
   * the response ends.
   * @throws ApiError 401/403/429, UnavailableError (503) when Redis is down in `reject` mode.
   */
  async admit(authorization: string | undefined): Promise<Admission> {
    if (this.#keys === undefined) return OPEN;
    const startedAt = performance.now();
    try {
      const entry = this.authenticate(authorization);
      if (entry === undefined || this.#limiter === undefined) return OPEN;
      const limits = this.limitsOf(entry);
      const result = await this.#limiter.admit(entry.name, limits);
      this.#metrics.rateLimiterDegraded.set(this.#limiter.degraded ? 1 : 0);
      if (!result.ok) {
        this.#metrics.rateLimited.inc({ api_key: entry.name, limit: result.limit });
        throw result.limit === "requests"
          ? new ApiError(
              "resource_exhausted",
              `Rate limit reached for API key '${entry.name}': ${limits.rpm} requests per minute (bursts of ${limits.burst}). ` +
                `Retry after ${Math.ceil(result.retryAfterMs / 1000)} s.`,
              { apiCode: "rate_limit_exceeded", retryAfterMs: result.retryAfterMs },
            )
          : new ApiError(
              "resource_exhausted",
              `Too many concurrent requests for API key '${entry.name}': at most ${limits.maxStreams} may be in flight at once. ` +
                "Retry when one has finished.",
              { apiCode: "concurrency_limit_exceeded", retryAfterMs: result.retryAfterMs },
            );
      }
      const headers: Record<string, string> = {};
      if (limits.rpm > 0) {
        headers["x-ratelimit-limit-requests"] = String(limits.rpm);
        if (result.remainingRequests !== undefined) headers["x-ratelimit-remaining-requests"] = String(result.remainingRequests);
      }
      return { keyName: entry.name, headers, release: () => result.lease.release() };
    } finally {
      this.#metrics.admissionDuration.observe((performance.now() - startedAt) / 1000);
    }
  }

  /** A key's limits: its own, else the gateway's defaults. */
  limitsOf(entry: ApiKeyEntry): KeyLimits {
    const c = this.#config;
    const rpm = entry.rpm ?? c.rateLimitRpm;
    const burst = entry.burst ?? (c.rateLimitBurst > 0 ? c.rateLimitBurst : rpm);
    return { rpm, burst: Math.max(1, burst), maxStreams: entry.maxStreams ?? c.maxConcurrentStreams };
  }

  /** Re-reads the API keys file now (SIGHUP). */
  async reloadKeys(): Promise<void> {
    await this.#keys?.reload(true);
  }

  /** Stops watching the keys file, gives back held stream slots, closes Redis. Idempotent. */
  async close(): Promise<void> {
    this.#keys?.close();
    await this.#limiter?.close();
    if (this.#redis !== undefined) await closeRedis(this.#redis);
  }
}
