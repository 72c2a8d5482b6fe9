/**
 * The scheduler's in-memory map from block hash to the workers holding it,
 * fed by workers' KV events. Lookups walk a prompt's chained block hashes
 * and give each worker the length of its longest cached prefix.
 */
export class KvIndex {
  readonly #holders = new Map<string, Set<string>>();
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
      const set = this.#holders.get(h);
      if (set) set.add(worker);
      else this.#holders.set(h, new Set([worker]));
    }
  }

  removed(worker: string, hashes: readonly string[]): void {
    const mine = this.#byWorker.get(worker);
    for (const h of hashes) {
      mine?.delete(h);
      const set = this.#holders.get(h);
      if (!set) continue;
      set.delete(worker);
      if (set.size === 0) this.#holders.delete(h);
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
   * For each worker in `among`, how many leading blocks of `hashes` it holds.
   * Stops as soon as no candidate holds the next block: O(prefix length).
   */
  match(hashes: readonly string[], among: readonly string[]): Map<string, number> {
    const result = new Map<string, number>();
    let active = among.filter((w) => this.#byWorker.has(w));
    for (const w of among) result.set(w, 0);
    for (let i = 0; i < hashes.length && active.length > 0; i++) {
      const holders = this.#holders.get(hashes[i] as string);
      if (!holders) break;
      const next: string[] = [];
      for (const w of active) {
        if (holders.has(w)) {
          next.push(w);
          result.set(w, i + 1);
        }
      }
      active = next;
    }
    return result;
  }
}
