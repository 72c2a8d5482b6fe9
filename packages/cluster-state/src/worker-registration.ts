import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { ClusterKeys } from "./keys.ts";
import { whenRedisReady } from "./redis-client.ts";
import type { WorkerInfo } from "./worker-info.ts";

/** Options of {@link WorkerRegistration}. */
export interface WorkerRegistrationOptions {
  redis: Redis;
  keys: ClusterKeys;
  logger: Logger;
  /** Called for every heartbeat: the worker's current state. */
  snapshot: () => WorkerInfo;
  /** Heartbeat period; default 1000 ms. */
  heartbeatMs?: number;
  /** Registration expiry; a worker silent this long leaves routing. Default 3000 ms. */
  ttlMs?: number;
}

/**
 * A worker's presence in the cluster: a JSON value with a TTL refreshed by a
 * heartbeat. A worker that dies (or hangs) stops refreshing it and drops out
 * of routing when it expires; a clean close removes it at once.
 */
export class WorkerRegistration {
  readonly #options: Required<WorkerRegistrationOptions>;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(options: WorkerRegistrationOptions) {
    this.#options = { heartbeatMs: 1_000, ttlMs: 3_000, ...options };
  }

  /** Registers now and keeps heartbeating. Redis being down is logged, not thrown. */
  async start(): Promise<void> {
    await whenRedisReady(this.#options.redis);
    await this.beat();
    await this.#publish("join");
    this.#timer = setInterval(() => void this.beat(), this.#options.heartbeatMs);
    this.#timer.unref();
  }

  /** Sends a heartbeat now (e.g. when draining starts, so routing reacts at once). */
  beat(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#inFlight = this.#inFlight.then(() => this.#write());
    return this.#inFlight;
  }

  async #write(): Promise<void> {
    const { redis, keys, snapshot, ttlMs } = this.#options;
    const info = snapshot();
    try {
      await redis
        .multi()
        .set(keys.worker(info.id), JSON.stringify(info), "PX", ttlMs)
        .sadd(keys.workerIds, info.id)
        .exec();
    } catch (error: unknown) {
      this.#options.logger.debug({ err: error }, "heartbeat failed");
    }
  }

  /** Announces a state change (join, drain, leave) to schedulers listening. */
  async #publish(kind: "join" | "drain" | "leave"): Promise<void> {
    const { redis, keys, snapshot } = this.#options;
    try {
      await redis.publish(keys.workerEvents, JSON.stringify({ kind, id: snapshot().id }));
    } catch {
      // Schedulers also poll; a lost announcement only delays them.
    }
  }

  /** Marks the worker draining in the registry at once. */
  async drain(): Promise<void> {
    await this.beat();
    await this.#publish("drain");
  }

  /** Stops heartbeating and removes the registration. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    await this.#inFlight;
    this.#closed = true;
    const { redis, keys, snapshot } = this.#options;
    const id = snapshot().id;
    try {
      await redis.multi().del(keys.worker(id)).srem(keys.workerIds, id).exec();
    } catch {
      // It expires by itself.
    }
    await this.#publish("leave");
  }
}
