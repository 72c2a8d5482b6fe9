/**
 * Every Redis key the cluster uses, under one configurable prefix (default
 * `smollm:`), so several clusters can share one Redis.
 */
export class ClusterKeys {
  constructor(readonly prefix: string = "smollm:") {}

  /** Set of ids of workers that registered (may include expired ones). */
  get workerIds(): string {
    return `${this.prefix}workers`;
  }

  /** A worker's registration and load, JSON, with a TTL refreshed by its heartbeat. */
  worker(id: string): string {
    return `${this.prefix}worker:${id}`;
  }

  /** Stream of KV-cache block events (stored, removed, reset) from all workers. */
  get kvEvents(): string {
    return `${this.prefix}kv:events`;
  }

  /** Set of the block hashes a worker holds now: the snapshot the event stream continues. */
  kvBlocks(workerId: string): string {
    return `${this.prefix}kv:blocks:${workerId}`;
  }

  /** Pub/sub channel where workers announce joins, drains and leaves at once. */
  get workerEvents(): string {
    return `${this.prefix}events:workers`;
  }

  /**
   * An API key's request token bucket (hash: tokens, last refill), shared by
   * every gateway. `{name}` is a Redis Cluster hash tag: the bucket and the
   * stream leases of one key live in one slot, so one script can touch both.
   */
  rateLimitBucket(keyName: string): string {
    return `${this.prefix}ratelimit:{${keyName}}:requests`;
  }

  /** An API key's stream leases: sorted set of lease ids scored by their expiry (epoch ms). */
  streamLeases(keyName: string): string {
    return `${this.prefix}ratelimit:{${keyName}}:streams`;
  }
}
