import { Redis } from "ioredis";
import type { Logger } from "pino";

export type { Redis } from "ioredis";

/** Options of {@link connectRedis}. */
export interface RedisConnectOptions {
  /** `redis://host:port/db` (rediss:// for TLS). */
  url: string;
  logger: Logger;
  /** Name shown in `CLIENT LIST`. */
  name: string;
}

/**
 * A Redis client that never makes the process fail when Redis is away:
 * commands fail fast instead of queueing without bound, and it reconnects
 * with capped backoff forever. Callers degrade (load-only routing, stale
 * registry) rather than stop serving.
 */
export function connectRedis(options: RedisConnectOptions): Redis {
  const redis = new Redis(options.url, {
    connectionName: options.name,
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 4), 1_000),
  });
  let down = false;
  redis.on("error", (error: unknown) => {
    if (!down) options.logger.warn({ err: error, redis_client: options.name }, "redis unavailable");
    down = true;
  });
  redis.on("ready", () => {
    if (down) options.logger.info({ redis_client: options.name }, "redis reconnected");
    down = false;
  });
  return redis;
}

/** Closes a client; idempotent and quiet when already closed. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}

/** Waits until the client is connected, up to `timeoutMs`; resolves false on timeout (never throws). */
export function whenRedisReady(redis: Redis, timeoutMs = 2_000): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      redis.removeListener("ready", onReady);
      resolve(ok);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.once("ready", onReady);
  });
}
