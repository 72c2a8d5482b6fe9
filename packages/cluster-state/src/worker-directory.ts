import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { ClusterKeys } from "./keys.ts";
import { whenRedisReady } from "./redis-client.ts";
import { parseWorkerInfo, type WorkerInfo } from "./worker-info.ts";

/** Options of {@link WorkerDirectory}. */
export interface WorkerDirectoryOptions {
  redis: Redis;
  /** A second connection for pub/sub (subscribing blocks a connection); optional. */
  subscriber?: Redis;
  keys: ClusterKeys;
  logger: Logger;
  /** Poll period; default 500 ms. */
  refreshMs?: number;
}

/**
 * The scheduler's view of live workers, read from the Redis registry. When
 * Redis cannot be read the last known list is kept (marked stale) so routing
 * continues; workers that then fail are excluded by the caller.
 */
export class WorkerDirectory {
  readonly #options: Required<Omit<WorkerDirectoryOptions, "subscriber">> & { subscriber?: Redis };
  #workers = new Map<string, WorkerInfo>();
  #stale = true;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #closed = false;
  readonly #listeners = new Set<(workers: readonly WorkerInfo[]) => void>();

  constructor(options: WorkerDirectoryOptions) {
    this.#options = { refreshMs: 500, ...options };
  }

  /** Reads the registry once and keeps it fresh (poll + pub/sub announcements). */
  async start(): Promise<void> {
    await whenRedisReady(this.#options.redis);
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#options.refreshMs);
    this.#timer.unref();
    const sub = this.#options.subscriber;
    if (sub) {
      sub.on("message", () => void this.refresh());
      // Resubscribe after reconnects: ioredis does it by itself (autoResubscribe).
      sub.subscribe(this.#options.keys.workerEvents).catch((error: unknown) => {
        this.#options.logger.warn({ err: error }, "worker events subscribe failed; polling only");
      });
    }
  }

  /** Live workers (draining ones included; callers filter). */
  workers(): readonly WorkerInfo[] {
    return [...this.#workers.values()];
  }

  get(id: string): WorkerInfo | undefined {
    return this.#workers.get(id);
  }

  /** True when the last read of Redis failed and the list may be out of date. */
  get stale(): boolean {
    return this.#stale;
  }

  /** Called with the new list whenever a refresh succeeds. */
  onChange(listener: (workers: readonly WorkerInfo[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Re-reads the registry; concurrent calls share one read. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    const { redis, keys } = this.#options;
    try {
      const ids = await redis.smembers(keys.workerIds);
      const values = ids.length === 0 ? [] : await redis.mget(ids.map((id) => keys.worker(id)));
      const next = new Map<string, WorkerInfo>();
      const expired: string[] = [];
      ids.forEach((id, i) => {
        const info = parseWorkerInfo(values[i]);
        if (info) next.set(id, info);
        else expired.push(id);
      });
      if (expired.length > 0) await redis.srem(keys.workerIds, ...expired);
      for (const id of this.#workers.keys()) {
        if (!next.has(id)) this.#options.logger.info({ worker_id: id }, "worker left routing");
      }
      for (const id of next.keys()) {
        if (!this.#workers.has(id)) this.#options.logger.info({ worker_id: id, address: next.get(id)?.address }, "worker joined routing");
      }
      this.#workers = next;
      this.#stale = false;
      for (const listener of this.#listeners) listener(this.workers());
    } catch (error: unknown) {
      if (!this.#stale) this.#options.logger.warn({ err: error }, "worker registry unreadable; keeping last known workers");
      this.#stale = true;
    }
  }

  /** Stops polling. Idempotent; does not close the Redis clients (their owner does). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#refreshing;
  }
}
