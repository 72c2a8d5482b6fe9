import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { CancelledError, OverloadedError, type ClusterError } from "@smollm/common";

/** One sequence of the shared context; held by at most one generation. */
export interface Slot {
  readonly index: number;
  readonly sequence: LlamaContextSequence;
}

interface SlotState extends Slot {
  busy: boolean;
  /** Monotonic release counter, for least-recently-used tie breaking. */
  releasedAt: number;
}

interface Waiter {
  resolve: (slot: Slot) => void;
  reject: (error: ClusterError) => void;
  cleanup: () => void;
}

/** Options of {@link SlotPool}. */
export interface SlotPoolOptions {
  /** Waiting requests before new ones are rejected with OverloadedError. */
  maxQueue: number;
  /** Longest wait for a slot; 0 waits forever. */
  queueTimeoutMs: number;
  /** Retry-After hint given with OverloadedError. */
  retryAfterMs?: number;
}

/**
 * The slots of one context and a bounded FIFO queue of requests waiting for
 * one. A request takes the free slot whose KV cache shares the longest prefix
 * with its prompt (ties: least recently used), so a conversation's next turn
 * lands where its history already is. A freed slot goes to the oldest waiter.
 */
export class SlotPool {
  readonly #slots: SlotState[];
  readonly #waiters: Waiter[] = [];
  readonly #options: Required<SlotPoolOptions>;
  #active = 0;
  #releases = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(sequences: readonly LlamaContextSequence[], options: SlotPoolOptions) {
    this.#slots = sequences.map((sequence, index) => ({ index, sequence, busy: false, releasedAt: 0 }));
    this.#options = { retryAfterMs: 1_000, ...options };
  }

  get size(): number {
    return this.#slots.length;
  }

  /** Slots held by generations. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#waiters.length;
  }

  /** Every slot, busy or not (for KV accounting). */
  get slots(): readonly Slot[] {
    return this.#slots;
  }

  isBusy(index: number): boolean {
    return this.#slots[index]?.busy ?? false;
  }

  /**
   * A slot for `prompt`: at once if one is free, else after queueing.
   * Rejects with OverloadedError (queue full or queue timeout) or
   * CancelledError (signal aborted while waiting; the request leaves the queue).
   */
  acquire(prompt: readonly number[], signal: AbortSignal): Promise<Slot> {
    if (signal.aborted) return Promise.reject(new CancelledError());
    const free = this.#bestFreeSlot(prompt);
    if (free !== undefined) {
      this.#take(free);
      return Promise.resolve(free);
    }
    if (this.#waiters.length >= this.#options.maxQueue) {
      return Promise.reject(
        new OverloadedError(`all ${this.#slots.length} slots busy and ${this.#waiters.length} requests queued`, {
          retryAfterMs: this.#options.retryAfterMs,
        }),
      );
    }
    return new Promise<Slot>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = (error: ClusterError): void => {
        const at = this.#waiters.indexOf(waiter);
        if (at === -1) return;
        this.#waiters.splice(at, 1);
        waiter.cleanup();
        reject(error);
        this.#checkIdle();
      };
      const onAbort = (): void => leave(new CancelledError("request cancelled while queued"));
      const waiter: Waiter = {
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      if (this.#options.queueTimeoutMs > 0) {
        timer = setTimeout(
          () =>
            leave(
              new OverloadedError(`no slot became free within ${this.#options.queueTimeoutMs} ms`, {
                retryAfterMs: this.#options.retryAfterMs,
              }),
            ),
          this.#options.queueTimeoutMs,
        );
      }
      this.#waiters.push(waiter);
    });
  }

  /** Gives a slot back; the oldest waiter (if any) gets it at once. */
  release(slot: Slot): void {
    const state = this.#slots[slot.index];
    if (state === undefined || !state.busy) return;
    state.busy = false;
    state.releasedAt = ++this.#releases;
    this.#active--;
    const next = this.#waiters.shift();
    if (next !== undefined) {
      next.cleanup();
      this.#take(state);
      next.resolve(state);
    }
    this.#checkIdle();
  }

  /** Rejects every queued request (shutdown). */
  rejectWaiters(error: ClusterError): void {
    for (const waiter of this.#waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(error);
    }
    this.#checkIdle();
  }

  /** Resolves when no slot is busy and nobody waits. */
  whenIdle(): Promise<void> {
    if (this.#active === 0 && this.#waiters.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #take(state: SlotState): void {
    state.busy = true;
    this.#active++;
  }

  #bestFreeSlot(prompt: readonly number[]): SlotState | undefined {
    let best: SlotState | undefined;
    let bestPrefix = -1;
    for (const slot of this.#slots) {
      if (slot.busy) continue;
      // Compares against the sequence's own token list without copying it.
      const prefix = slot.sequence.compareContextTokens(prompt as Token[]).firstDifferentIndex;
      if (prefix > bestPrefix || (prefix === bestPrefix && best !== undefined && slot.releasedAt < best.releasedAt)) {
        best = slot;
        bestPrefix = prefix;
      }
    }
    return best;
  }

  #checkIdle(): void {
    if (this.#active !== 0 || this.#waiters.length !== 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
