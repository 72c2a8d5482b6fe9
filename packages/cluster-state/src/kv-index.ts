/**
 * The scheduler's in-memory map from block hash to the workers holding it,
 * fed by workers' KV events. Lookups walk a prompt's chained block hashes
 * and give each worker the length of its longest cached prefix.
 */
export class KvIndex {
  // Most blocks live on one worker: store the id itself and only grow to a
  // Set when shared, which keeps a million-block index small and GC-light.
  readonly #holders = new Map<string, string | Set<string>>();
  readonly #byWorker = new Map<string, Set<string>>();

  /** Distinct blocks indexed. */
  get size(): number {
    return this.#holders.size;
  }

  /** Workers with at least one block. */
  get workerCount(): number {
    return this.#byWorker.size;
  }

  stored(worker: string, hashes: readonly string[]): void {
    let mine = this.#byWorker.get(worker);
    if (!mine) this.#byWorker.set(worker, (mine = new Set()));
    for (const h of hashes) {
      if (h.length === 0) continue;
      mine.add(h);
      const held = this.#holders.get(h);
      if (held === undefined) this.#holders.set(h, worker);
      else if (typeof held === "string") {
        if (held !== worker) this.#holders.set(h, new Set([held, worker]));
      } else held.add(worker);
    }
  }

  removed(worker: string, hashes: readonly string[]): void {
    const mine = this.#byWorker.get(worker);
    for (const h of hashes) {
      mine?.delete(h);
      const held = this.#holders.get(h);
      if (held === undefined) continue;
      if (typeof held === "string") {
        if (held === worker) this.#holders.delete(h);
      } else {
        held.delete(worker);
        if (held.size === 1) this.#holders.set(h, held.values().next().value as string);
        else if (held.size === 0) this.#holders.delete(h);
      }
    }
  }

  /** Replaces everything known about a worker. */
  reset(worker: string, hashes: readonly string[]): void {
    this.dropWorker(worker);
    this.stored(worker, hashes);
  }

  dropWorker(worker: string): void {
    const mine = this.#byWorker.get(worker);
    if (!mine) return;
    this.removed(worker, [...mine]);
    this.#byWorker.delete(worker);
  }

  clear(): void {
    this.#holders.clear();
    this.#byWorker.clear();
  }

  /** Workers known to the index. */
  workers(): string[] {
    return [...this.#byWorker.keys()];
  }

  /**
   * How many leading blocks of `hashes` each worker accepted by `among`
   * holds; workers holding none are absent from the result. Stops as soon as
   * no candidate holds the next block: O(cached prefix length).
   */
  match(hashes: readonly string[], among: (worker: string) => boolean): Map<string, number> {
    const result = new Map<string, number>();
    const first = hashes.length > 0 ? this.#holders.get(hashes[0] as string) : undefined;
    if (first === undefined) return result;
    let active = (typeof first === "string" ? [first] : [...first]).filter(among);
    for (let i = 0; i < hashes.length && active.length > 0; i++) {
      const held = this.#holders.get(hashes[i] as string);
      if (held === undefined) break;
      const next: string[] = [];
      for (const w of active) {
        if (typeof held === "string" ? held === w : held.has(w)) {
          next.push(w);
          result.set(w, i + 1);
        }
      }
      active = next;
    }
    return result;
  }
}
