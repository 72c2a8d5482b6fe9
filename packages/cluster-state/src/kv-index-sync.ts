import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { ClusterKeys } from "./keys.ts";
import { KvIndex } from "./kv-index.ts";

/** Options of {@link KvIndexSync}. */
export interface KvIndexSyncOptions {
  /** For snapshot reads. */
  redis: Redis;
  /** A dedicated connection: XREAD BLOCK holds it. */
  reader: Redis;
  keys: ClusterKeys;
  logger: Logger;
  /** Workers whose snapshots to load (the live ones). */
  workerIds: () => readonly string[];
  /** XREAD block time; default 1000 ms. */
  blockMs?: number;
  /** Events read per call; default 1000. */
  batch?: number;
}

const split = (s: string | undefined): string[] => (s ? s.split(",").filter((x) => x.length > 0) : []);

/**
 * Keeps a {@link KvIndex} in step with Redis: it loads every worker's block
 * set (the snapshot), then follows the event stream from the last entry that
 * existed before the snapshot was read, so no event is missed and replaying
 * a few already contained in the snapshot is harmless (set operations in
 * order). When Redis is lost the index is marked unhealthy (routing goes
 * load-only) and rebuilt from scratch once Redis answers again.
 */
export class KvIndexSync {
  readonly index = new KvIndex();
  readonly #o: Required<KvIndexSyncOptions>;
  #lastId = "0-0";
  #healthy = false;
  #closed = false;
  #loop: Promise<void> | undefined;
  /** Epoch ms of the newest event applied, for the lag metric. */
  #lastEventAt = 0;
  #eventsApplied = 0;

  constructor(options: KvIndexSyncOptions) {
    this.#o = { blockMs: 1_000, batch: 1_000, ...options };
    // A reconnect may mean a restarted (empty) Redis, and events sent while
    // disconnected are unknown: rebuild rather than trust the index.
    for (const conn of [options.redis, options.reader]) {
      conn.on("reconnecting", () => {
        this.#healthy = false;
      });
    }
  }

  /** True while the index follows the stream; false until rebuilt after a Redis outage. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Milliseconds between the newest applied event and now (0 when idle and caught up). */
  get lagMs(): number {
    return this.#lastEventAt === 0 ? 0 : Math.max(0, Date.now() - this.#lastEventAt);
  }

  get eventsApplied(): number {
    return this.#eventsApplied;
  }

  /** Starts following; resolves after the first rebuild attempt. */
  async start(): Promise<void> {
    await this.#rebuild();
    this.#loop = this.#follow();
  }

  async #rebuild(): Promise<boolean> {
    const { redis, keys } = this.#o;
    try {
      const last = await redis.xrevrange(keys.kvEvents, "+", "-", "COUNT", 1);
      const lastId = last[0]?.[0] ?? "0-0";
      const ids = this.#o.workerIds();
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.smembers(keys.kvBlocks(id));
      const sets = (await pipeline.exec()) ?? [];
      this.index.clear();
      ids.forEach((id, i) => {
        const [error, members] = sets[i] ?? [new Error("missing"), null];
        if (!error && Array.isArray(members)) this.index.reset(id, members as string[]);
      });
      this.#lastId = lastId;
      this.#healthy = true;
      this.#o.logger.info({ blocks: this.index.size, workers: ids.length, from_event: lastId }, "kv index rebuilt");
      return true;
    } catch (error: unknown) {
      if (this.#healthy) this.#o.logger.warn({ err: error }, "kv index rebuild failed");
      this.#healthy = false;
      return false;
    }
  }

  async #follow(): Promise<void> {
    const { reader, keys, blockMs, batch } = this.#o;
    while (!this.#closed) {
      if (!this.#healthy) {
        if (!(await this.#rebuild())) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
      }
      try {
        const reply = (await reader.xread("COUNT", batch, "BLOCK", blockMs, "STREAMS", keys.kvEvents, this.#lastId)) as
          | [string, [string, string[]][]][]
          | null;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [id, fields] of entries) {
          this.#apply(fields);
          this.#lastId = id;
          this.#lastEventAt = Number(id.split("-")[0]);
          this.#eventsApplied++;
        }
        if (entries.length === 0) {
          this.#lastEventAt = 0;
          // A flushed Redis drops the stream without a reconnect: notice it.
          if (this.#lastId !== "0-0" && (await this.#o.redis.exists(keys.kvEvents)) === 0) {
            this.#o.logger.warn("kv event stream vanished (Redis flushed?); rebuilding the index");
            this.#healthy = false;
          }
        }
      } catch (error: unknown) {
        if (this.#closed) return;
        if (this.#healthy) this.#o.logger.warn({ err: error }, "kv event stream lost; routing without prefix index until rebuilt");
        this.#healthy = false;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  #apply(fields: string[]): void {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    const worker = f["w"];
    if (!worker) return;
    if (f["t"] === "reset") this.index.reset(worker, split(f["h"]));
    else {
      this.index.stored(worker, split(f["s"]));
      this.index.removed(worker, split(f["r"]));
    }
  }

  /** A worker left routing: forget its blocks. */
  dropWorker(id: string): void {
    this.index.dropWorker(id);
  }

  /**
   * Reloads one worker's blocks from its snapshot set; call it when a worker
   * (re)joins routing. A worker publishes only changes, so if it was dropped
   * while still alive (the registry looked empty for a moment after Redis was
   * flushed or restarted, a late heartbeat), the blocks it still holds would
   * never come back and prefix routing would miss them for good. Events the
   * follower applies afterwards are newer than the set or already in it, and
   * applied in order they converge, as after a rebuild. Never throws; if Redis
   * cannot be read the index is rebuilt whole once it can.
   */
  async resyncWorker(id: string): Promise<void> {
    try {
      const members = await this.#o.redis.smembers(this.#o.keys.kvBlocks(id));
      if (!this.#closed) this.index.reset(id, members);
    } catch (error: unknown) {
      if (this.#healthy) this.#o.logger.warn({ err: error, worker_id: id }, "kv blocks of a joining worker unreadable; rebuilding the index");
      this.#healthy = false;
    }
  }

  /** Stops following. Idempotent; the reader connection is closed by its owner (which unblocks XREAD). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#o.reader.disconnect();
    await this.#loop?.catch(() => undefined);
  }
}
