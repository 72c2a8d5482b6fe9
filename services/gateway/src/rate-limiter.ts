import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { UnavailableError } from "@smollm/common";
import type { ClusterKeys } from "@smollm/cluster-state";

/** The limits of one API key; 0 means unlimited. */
export interface KeyLimits {
  /** Sustained requests per minute. */
  readonly rpm: number;
  /** Token bucket size: requests that may come at once (≥ 1 when rpm > 0). */
  readonly burst: number;
  /** Chat completions in flight at once, over every gateway. */
  readonly maxStreams: number;
}

/** A held concurrent-stream slot; `release()` is idempotent. */
export interface StreamLease {
  release(): void;
}

/** What {@link RateLimiter.admit} decided. */
export type AdmitResult =
  | { readonly ok: true; readonly lease: StreamLease; readonly remainingRequests: number | undefined }
  | { readonly ok: false; readonly limit: "requests" | "streams"; readonly retryAfterMs: number };

/** What to do when Redis cannot be reached. */
export type RedisFailureMode = "local" | "reject";

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** The shared store; undefined limits per process only. */
  redis: Redis | undefined;
  keys: ClusterKeys;
  logger: Logger;
  /** A stream lease expires this long after its last renewal (a crashed gateway's slots come back after it). */
  leaseTtlMs: number;
  /** `local`: fall back to per-process limits; `reject`: refuse with 503. */
  onRedisError: RedisFailureMode;
  /** Longest wait for Redis before falling back; default 250 ms. */
  redisTimeoutMs?: number;
  /** Told of every Redis failure (metrics). */
  onRedisFailure?: (error: unknown) => void;
}

const NO_LEASE: StreamLease = { release: () => undefined };

/**
 * One script, so the check and the update are atomic across gateways: drops
 * expired stream leases, refuses when the key has `max_streams` leases,
 * refills the token bucket (Redis's clock, so gateways' clocks do not
 * matter) and refuses when no token is left; otherwise takes a token and
 * adds the lease. A refusal changes nothing.
 *
 * KEYS: bucket hash, leases sorted set.
 * ARGV: tokens per ms, burst, max streams, lease id, lease TTL ms.
 * Returns {outcome (0 ok, 1 requests, 2 streams), retry-after ms, streams held, tokens left (-1: no rpm limit)}.
 */
const ADMIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_streams = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
local streams = 0
if max_streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  streams = redis.call('ZCARD', KEYS[2])
  if streams >= max_streams then return {2, 1000, streams, -1} end
end
local tokens = -1
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'ts')
  tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil then
    tokens = burst
  elseif now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate)
  end
  if tokens < 1 then
    return {1, math.ceil((1 - tokens) / rate), streams, 0}
  end
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
end
if max_streams > 0 then
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ttl)
  streams = streams + 1
end
return {0, 0, streams, math.floor(tokens)}
`;

/**
 * Extends this gateway's leases of one key. ZADD without XX: a lease that
 * expired during a Redis outage is counted again, since its stream is still
 * running. KEYS: leases sorted set. ARGV: TTL ms, lease ids…
 */
const RENEW_LUA = `
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return #ARGV - 1
`;

interface LimiterScripts {
  smollmAdmit(bucket: string, leases: string, ...args: (string | number)[]): Promise<[number, number, number, number]>;
  smollmRenew(leases: string, ...args: (string | number)[]): Promise<number>;
}

/** Per-process limits with the same semantics: the fallback while Redis is away. */
class LocalLimits {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #streams = new Map<string, number>();

  admit(name: string, limits: KeyLimits): AdmitResult {
    const held = this.#streams.get(name) ?? 0;
    if (limits.maxStreams > 0 && held >= limits.maxStreams) return { ok: false, limit: "streams", retryAfterMs: 1_000 };
    let remaining: number | undefined;
    if (limits.rpm > 0) {
      const rate = limits.rpm / 60_000;
      const now = Date.now();
      const b = this.#buckets.get(name) ?? { tokens: limits.burst, at: now };
      b.tokens = Math.min(limits.burst, b.tokens + Math.max(0, now - b.at) * rate);
      b.at = now;
      this.#buckets.set(name, b);
      if (b.tokens < 1) return { ok: false, limit: "requests", retryAfterMs: Math.ceil((1 - b.tokens) / rate) };
      b.tokens -= 1;
      remaining = Math.floor(b.tokens);
    }
    if (limits.maxStreams === 0) return { ok: true, lease: NO_LEASE, remainingRequests: remaining };
    this.#streams.set(name, held + 1);
    let released = false;
    const lease: StreamLease = {
      release: () => {
        if (released) return;
        released = true;
        const n = (this.#streams.get(name) ?? 1) - 1;
        if (n <= 0) this.#streams.delete(name);
        else this.#streams.set(name, n);
      },
    };
    return { ok: true, lease, remainingRequests: remaining };
  }
}

/**
 * Per-key request rate (token bucket) and concurrent-stream limits, enforced
 * across every gateway replica through Redis.
 *
 * Streams are counted with leases rather than a counter: each admitted
 * request adds a lease id to the key's sorted set, scored by an expiry this
 * gateway pushes forward every `leaseTtlMs / 3` while the stream runs and
 * removes when it ends. A gateway that crashes stops renewing, so its slots
 * come back after `leaseTtlMs` — a counter would leak them forever.
 *
 * When Redis cannot be reached (or answers slower than `redisTimeoutMs`),
 * `onRedisError: "local"` (the default) keeps serving with the same limits
 * enforced per gateway process: authentication still holds and every
 * replica stays bounded, but N replicas together allow up to N times the
 * limits until Redis is back (retried at most once a second). `reject`
 * refuses rate-limited keys with 503 instead. Keys without limits never
 * touch Redis.
 */
export class RateLimiter {
  readonly #o: Required<Omit<RateLimiterOptions, "redis" | "onRedisFailure">> & Pick<RateLimiterOptions, "redis" | "onRedisFailure">;
  readonly #local = new LocalLimits();
  readonly #instance = `${randomUUID().slice(0, 8)}-${process.pid}`;
  #seq = 0;
  /** Leases this gateway holds in Redis, by key name: renewed until released. */
  readonly #held = new Map<string, Set<string>>();
  readonly #renewTimer: NodeJS.Timeout;
  #retryRedisAt = 0;
  #degraded = false;
  #closed = false;

  constructor(options: RateLimiterOptions) {
    this.#o = { redisTimeoutMs: 250, ...options };
    const redis = options.redis;
    if (redis !== undefined) {
      redis.defineCommand("smollmAdmit", { numberOfKeys: 2, lua: ADMIT_LUA });
      redis.defineCommand("smollmRenew", { numberOfKeys: 1, lua: RENEW_LUA });
    }
    this.#renewTimer = setInterval(() => void this.#renew(), Math.max(100, Math.floor(options.leaseTtlMs / 3)));
    this.#renewTimer.unref();
  }

  /** True while Redis is unreachable and limits are per process (or refused). */
  get degraded(): boolean {
    return this.#degraded;
  }

  /**
   * Admits one request of API key `name`, or says which limit refused it.
   * @throws UnavailableError when Redis is unreachable and the mode is `reject`.
   */
  async admit(name: string, limits: KeyLimits): Promise<AdmitResult> {
    if (limits.rpm === 0 && limits.maxStreams === 0) return { ok: true, lease: NO_LEASE, remainingRequests: undefined };
    const redis = this.#o.redis;
    if (redis === undefined) return this.#local.admit(name, limits);
    if (Date.now() >= this.#retryRedisAt) {
      try {
        const result = await this.#admitRedis(redis, name, limits);
        if (this.#degraded) this.#o.logger.info("rate limiter: Redis is back; limits are shared by every gateway again");
        this.#degraded = false;
        return result;
      } catch (error: unknown) {
        this.#retryRedisAt = Date.now() + 1_000;
        this.#o.onRedisFailure?.(error);
        if (!this.#degraded) {
          this.#o.logger.warn(
            { err: error, mode: this.#o.onRedisError },
            this.#o.onRedisError === "local"
              ? "rate limiter: Redis unreachable; enforcing limits per gateway until it is back"
              : "rate limiter: Redis unreachable; refusing rate-limited keys until it is back",
          );
        }
        this.#degraded = true;
      }
    }
    if (this.#o.onRedisError === "reject") {
      throw new UnavailableError("The rate limiter is unavailable; retry shortly.", { retryAfterMs: 1_000 });
    }
    return this.#local.admit(name, limits);
  }

  async #admitRedis(redis: Redis, name: string, limits: KeyLimits): Promise<AdmitResult> {
    const { keys, leaseTtlMs } = this.#o;
    const leaseId = `${this.#instance}:${++this.#seq}`;
    const rate = limits.rpm / 60_000;
    const call = (redis as unknown as LimiterScripts).smollmAdmit(
      keys.rateLimitBucket(name),
      keys.streamLeases(name),
      rate,
      Math.max(1, limits.burst),
      limits.maxStreams,
      leaseId,
      leaseTtlMs,
    );
    const [outcome, retryAfterMs, , tokens] = await this.#withTimeout(call);
    if (outcome === 1) return { ok: false, limit: "requests", retryAfterMs: Math.max(1, retryAfterMs) };
    if (outcome === 2) return { ok: false, limit: "streams", retryAfterMs };
    const remainingRequests = limits.rpm > 0 ? tokens : undefined;
    if (limits.maxStreams === 0) return { ok: true, lease: NO_LEASE, remainingRequests };
    let set = this.#held.get(name);
    if (set === undefined) this.#held.set(name, (set = new Set()));
    set.add(leaseId);
    let released = false;
    const lease: StreamLease = {
      release: () => {
        if (released) return;
        released = true;
        const held = this.#held.get(name);
        held?.delete(leaseId);
        if (held?.size === 0) this.#held.delete(name);
        // Best effort: a lease Redis does not hear about expires by itself.
        redis.zrem(keys.streamLeases(name), leaseId).catch(() => undefined);
      },
    };
    return { ok: true, lease, remainingRequests };
  }

  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer in ${this.#o.redisTimeoutMs} ms`)), this.#o.redisTimeoutMs);
    });
    promise.catch(() => undefined);
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async #renew(): Promise<void> {
    const redis = this.#o.redis;
    if (redis === undefined || this.#held.size === 0 || this.#closed) return;
    const scripts = redis as unknown as LimiterScripts;
    await Promise.all(
      [...this.#held].map(([name, ids]) =>
        scripts.smollmRenew(this.#o.keys.streamLeases(name), this.#o.leaseTtlMs, ...ids).catch((error: unknown) => {
          // The leases may expire meanwhile: the next renewal adds them back.
          this.#o.logger.debug({ err: error, api_key: name }, "stream lease renewal failed");
        }),
      ),
    );
  }

  /** Stops renewing and gives back the leases still held; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#renewTimer);
    const redis = this.#o.redis;
    if (redis === undefined || this.#held.size === 0) return;
    const pipeline = redis.pipeline();
    for (const [name, ids] of this.#held) pipeline.zrem(this.#o.keys.streamLeases(name), ...ids);
    this.#held.clear();
    await pipeline.exec().catch(() => undefined);
  }
}
