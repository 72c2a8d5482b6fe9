import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";

/**
 * Lets an operation that needs node-llama-cpp's context lock (erasing a
 * slot's stale KV, clearing a sequence, saving or loading a sequence state)
 * run between two decode batches while other slots keep generating.
 *
 * Why it is needed: node-llama-cpp's batch dispatcher holds the context lock
 * for as long as decodes keep being queued, and every generating slot queues
 * its next token before the dispatcher looks again; so under continuous
 * generation the lock is never released, and such an operation (a new
 * request reusing a slot, a KV export) waited for every stream on the worker
 * to end (measured on the tiny model: a request joining two 1,500-token
 * streams got its first token after 4.4 s instead of ~50 ms).
 *
 * While an exclusive operation is pending, the gate is closed: loops that
 * queue decodes wait at {@link ContextGate.pass} before queueing their next
 * one; the dispatcher finishes what is queued, finds the queue empty and
 * releases the lock; the operation runs; the gate opens. Every stream pauses
 * for about one batch.
 */
export class ContextGate {
  #pending = 0;
  #opened: Promise<void> = Promise.resolve();
  #open: () => void = () => {};

  /** True while an exclusive operation is pending: callers of {@link pass} will wait. */
  get closed(): boolean {
    return this.#pending > 0;
  }

  /** Resolves once no exclusive operation is pending (at once when none is). */
  async pass(): Promise<void> {
    while (this.#pending > 0) await this.#opened;
  }

  /** Runs `operation` with the gate closed, so that it gets the context lock between two batches. */
  async exclusive<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#pending++ === 0) this.#opened = new Promise<void>((resolve) => (this.#open = resolve));
    try {
      return await operation();
    } finally {
      if (--this.#pending === 0) this.#open();
    }
  }
}

const gates = new WeakMap<LlamaContext, ContextGate>();

/** The gate of `sequence`'s context (one per context, created on first use). */
export function gateOf(sequence: LlamaContextSequence): ContextGate {
  const context = sequence.context;
  let gate = gates.get(context);
  if (gate === undefined) {
    gate = new ContextGate();
    gates.set(context, gate);
  }
  return gate;
}

/** Waits at `sequence`'s gate before queueing a decode (cheap when it is open). */
export function passGate(sequence: LlamaContextSequence): Promise<void> | undefined {
  const gate = gateOf(sequence);
  return gate.closed ? gate.pass() : undefined;
}

/** Runs a context-locked operation on `sequence` between two decode batches (see ContextGate). */
export function exclusive<T>(sequence: LlamaContextSequence, operation: () => Promise<T>): Promise<T> {
  return gateOf(sequence).exclusive(operation);
}
