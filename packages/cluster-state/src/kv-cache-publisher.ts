import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { blockHashes, DEFAULT_BLOCK_SIZE } from "./block-hash.ts";
import type { ClusterKeys } from "./keys.ts";

/** Options of {@link KvCachePublisher}. */
export interface KvCachePublisherOptions {
  redis: Redis;
  keys: ClusterKeys;
  workerId: string;
  logger: Logger;
  /** Tokens per block; must equal the scheduler's. Default 16. */
  blockSize?: number;
  /** Events are batched and written at most this often; default 20 ms. */
  flushMs?: number;
  /** Approximate cap of the shared event stream; default 200 000 entries. */
  maxStreamLength?: number;
  /** The block set expires this long after the worker stops refreshing it; default 30 s. */
  snapshotTtlMs?: number;
}

/**
 * A worker's side of the KV-cache index. Each slot reports the tokens its
 * sequence holds; the publisher turns that into chained block hashes,
 * reference-counts them across slots and publishes what appeared (stored)
 * and disappeared (removed), batched, together with the worker's current set
 * (the snapshot a restarted scheduler starts from). If Redis was unreachable
 * the next write replaces the snapshot whole (reset) so nothing stays wrong.
 */
export class KvCachePublisher {
  readonly #o: Required<KvCachePublisherOptions>;
  readonly #slotBlocks = new Map<number, string[]>();
  readonly #refs = new Map<string, number>();
  #stored = new Set<string>();
  #removed = new Set<string>();
  #needsReset = true;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: KvCachePublisherOptions) {
    this.#o = { blockSize: DEFAULT_BLOCK_SIZE, flushMs: 20, maxStreamLength: 200_000, snapshotTtlMs: 30_000, ...options };
  }

  get blockSize(): number {
    return this.#o.blockSize;
  }

  /** Number of distinct blocks held over all slots. */
  get blockCount(): number {
    return this.#refs.size;
  }

  /** Records the tokens slot `slot` now holds in KV (its whole sequence). Cheap; writes are batched. */
  setSlotTokens(slot: number, tokens: ArrayLike<number>): void {
    const before = this.#slotBlocks.get(slot) ?? [];
    const after = blockHashes(tokens, this.#o.blockSize);
    // Chained hashes: the shared prefix of the two lists is unchanged.
    let same = 0;
    while (same < before.length && same < after.length && before[same] === after[same]) same++;
    for (let i = same; i < before.length; i++) this.#release(before[i] as string);
    for (let i = same; i < after.length; i++) this.#acquire(after[i] as string);
    this.#slotBlocks.set(slot, after);
    this.#schedule();
  }

  #acquire(hash: string): void {
    const n = this.#refs.get(hash) ?? 0;
    this.#refs.set(hash, n + 1);
    if (n === 0) {
      if (!this.#removed.delete(hash)) this.#stored.add(hash);
    }
  }

  #release(hash: string): void {
    const n = this.#refs.get(hash) ?? 0;
    if (n <= 1) {
      this.#refs.delete(hash);
      if (!this.#stored.delete(hash)) this.#removed.add(hash);
    } else {
      this.#refs.set(hash, n - 1);
    }
  }

  /** Publishes the current state as a reset (used at start and after Redis was lost). */
  start(): Promise<void> {
    this.#needsReset = true;
    return this.flush();
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#o.flushMs);
    this.#timer.unref();
  }

  /** Writes pending events now. Never throws; a failed write leads to a reset later. */
  flush(): Promise<void> {
    this.#writing = this.#writing.then(() => this.#write());
    return this.#writing;
  }

  async #write(): Promise<void> {
    const { redis, keys, workerId } = this.#o;
    const setKey = keys.kvBlocks(workerId);
    const reset = this.#needsReset;
    const stored = [...this.#stored];
    const removed = [...this.#removed];
    if (!reset && stored.length === 0 && removed.length === 0) return;
    this.#stored = new Set();
    this.#removed = new Set();
    const multi = redis.multi();
    if (reset) {
      const all = [...this.#refs.keys()];
      multi.del(setKey);
      if (all.length > 0) multi.sadd(setKey, ...all);
      multi.xadd(keys.kvEvents, "MAXLEN", "~", this.#o.maxStreamLength, "*", "w", workerId, "t", "reset", "h", all.join(","));
    } else {
      if (stored.length > 0) multi.sadd(setKey, ...stored);
      if (removed.length > 0) multi.srem(setKey, ...removed);
      multi.xadd(
        keys.kvEvents, "MAXLEN", "~", this.#o.maxStreamLength, "*",
        "w", workerId, "t", "delta", "s", stored.join(","), "r", removed.join(","),
      );
    }
    multi.pexpire(setKey, this.#o.snapshotTtlMs);
    try {
      const results = await multi.exec();
      if (!results || results.some(([error]) => error)) throw new Error("kv event write failed");
      this.#needsReset = false;
    } catch (error: unknown) {
      if (!this.#needsReset) this.#o.logger.warn({ err: error, worker_id: workerId }, "kv events not published; will reset");
      this.#needsReset = true;
    }
  }

  /**
   * Checks that Redis still holds this worker's snapshot (it may have been
   * flushed or expired) and republishes it whole if not. Called with the heartbeat.
   */
  async verify(): Promise<void> {
    try {
      const n = await this.#o.redis.scard(this.#o.keys.kvBlocks(this.#o.workerId));
      if (n !== this.#refs.size) this.#needsReset = true;
      await this.#o.redis.pexpire(this.#o.keys.kvBlocks(this.#o.workerId), this.#o.snapshotTtlMs);
    } catch {
      this.#needsReset = true;
    }
    if (this.#needsReset) await this.flush();
  }

  /** Removes this worker's blocks from the index and stops. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#writing;
    const { redis, keys, workerId } = this.#o;
    try {
      await redis
        .multi()
        .del(keys.kvBlocks(workerId))
        .xadd(keys.kvEvents, "MAXLEN", "~", this.#o.maxStreamLength, "*", "w", workerId, "t", "reset", "h", "")
        .exec();
    } catch {
      // The snapshot expires and schedulers drop a worker that left.
    }
  }
}
