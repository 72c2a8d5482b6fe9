/**
 * Prefills one block of a long prompt in one sequence and saves its KV:
 * the anchor (a prefix of the prompt) followed by the block, so that the
 * block's KV is computed at its true global positions while attending to the
 * anchor instead of to everything before it (Star Attention's phase 1).
 *
 * llama.cpp wants a sequence's positions consecutive, so the anchor is
 * evaluated at the positions just before the block, [start - anchor, start),
 * rather than at its own. RoPE only sees relative distances, so the anchor's
 * own KV is what it would be at 0..anchor-1; the block sees it as adjacent
 * text. With the anchor = everything before the block those positions are the
 * true ones and the block's KV is exactly single-worker prefill's.
 *
 * An empty sequence may start at any position, but only node-llama-cpp's
 * internal batch queue (`context._decodeTokens`) takes one; going through it
 * (rather than `context._ctx` directly) keeps the block in the context's shared
 * batches, so the worker's other sequences keep decoding meanwhile. That is an
 * internal API of node-llama-cpp 3.21.1: `assertBlockPrefillSupport` checks it
 * at start-up.
 */
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";
import { CancelledError, InvalidRequestError } from "@smollm/common";
import { exclusive, passGate } from "./context-gate.ts";

/** One block to prefill. */
export interface BlockPrefill {
  /** Tokens attended to before the block (a prompt prefix); placed at [blockStart - anchor.length, blockStart). */
  readonly anchorTokens: readonly number[];
  readonly blockTokens: readonly number[];
  /** Global position of the block's first token. */
  readonly blockStart: number;
}

/** What prefilling a block did. */
export interface BlockPrefillResult {
  /** Tokens evaluated (cached ones excluded). */
  readonly evaluatedTokens: number;
  /** Tokens of the anchor + block reused from the sequence's cache. */
  readonly reusedTokens: number;
  readonly computeMs: number;
}

/** Options of {@link prefillBlock}. */
export interface BlockPrefillOptions {
  /** Most tokens per submitted step (capped at the context's batch size): cancellation and progress are checked between steps. */
  readonly stepTokens: number;
  readonly signal: AbortSignal;
  /** Told after each step: tokens of anchor + block evaluated or reused so far, of the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** The internal queue entry node-llama-cpp 3.21.1's LlamaContext takes (dist/evaluator/LlamaContext/LlamaContext.js). */
interface InternalContext {
  _decodeTokens(
    item: {
      sequenceId: number;
      firstTokenSequenceIndex: number;
      tokens: Token[];
      logits: boolean[];
      evaluationPriority: number;
      tokenMeter: unknown;
    },
    logitDataMapper: () => undefined,
  ): Promise<unknown>;
}

/** The sequence fields node-llama-cpp 3.21.1 keeps its view of the cache in. */
interface InternalSequence {
  _sequenceId: number;
  _contextTokens: Token[];
  _nextTokenIndex: number;
  _tokenMeter: unknown;
}

/** Throws when node-llama-cpp lacks the internals block prefill relies on (another version than 3.21.1). */
export function assertBlockPrefillSupport(context: LlamaContext, sequence?: LlamaContextSequence): void {
  const c = context as unknown as Partial<InternalContext>;
  const s = sequence as unknown as Partial<InternalSequence> | undefined;
  if (
    typeof c._decodeTokens !== "function" ||
    (s !== undefined &&
      (typeof s._sequenceId !== "number" || !Array.isArray(s._contextTokens) || typeof s._nextTokenIndex !== "number" || s._tokenMeter === undefined))
  ) {
    throw new Error("this node-llama-cpp version lacks the internals block prefill uses (written for 3.21.1)");
  }
}

/**
 * Evaluates `anchor + block` into `sequence` (held exclusively by the caller)
 * so that it holds the block's KV at positions [blockStart, blockStart + block).
 * When the anchor starts at position 0 the public API is used and a cached
 * prefix of the sequence is reused; otherwise the sequence is cleared first.
 * Leaves the cells in the sequence: save them, then call {@link releaseBlock}.
 */
export async function prefillBlock(
  context: LlamaContext,
  sequence: LlamaContextSequence,
  block: BlockPrefill,
  options: BlockPrefillOptions,
): Promise<BlockPrefillResult> {
  const first = block.blockStart - block.anchorTokens.length;
  if (!Number.isInteger(first) || first < 0) {
    throw new InvalidRequestError(`the anchor (${block.anchorTokens.length} tokens) is longer than the block's start (${block.blockStart})`);
  }
  if (block.blockTokens.length === 0) throw new InvalidRequestError("a block must hold at least one token");
  const tokens = [...block.anchorTokens, ...block.blockTokens] as Token[];
  if (tokens.length >= sequence.contextSize) {
    throw new InvalidRequestError(`anchor + block (${tokens.length} tokens) do not fit a slot of ${sequence.contextSize}`);
  }
  assertBlockPrefillSupport(context, sequence);
  // Never more than a batch per step: between steps every other slot's next
  // token joins the batch (see the engine's prefill), so generations on this
  // worker keep streaming while it prefills for another.
  const step = Math.max(1, Math.min(options.stepTokens, context.batchSize));
  const { signal, onProgress } = options;
  const startedAt = performance.now();
  const check = (): void => {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new CancelledError();
  };
  check();
  let reused = 0;
  if (first === 0) {
    // True positions: the ordinary path, which also leaves a reusable prefix cache behind.
    reused = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length);
    if (sequence.nextTokenIndex > reused) {
      await exclusive(sequence, () => sequence.eraseContextTokenRanges([{ start: reused, end: sequence.nextTokenIndex }]));
    }
    onProgress?.(reused, tokens.length);
    for (let at = reused; at < tokens.length; at += step) {
      check();
      await passGate(sequence);
      await sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(at, at + step));
      onProgress?.(Math.min(at + step, tokens.length), tokens.length);
    }
  } else {
    await exclusive(sequence, () => sequence.clearHistory());
    const ctx = context as unknown as InternalContext;
    const seq = sequence as unknown as InternalSequence;
    for (let at = 0; at < tokens.length; at += step) {
      check();
      await passGate(sequence);
      const part = tokens.slice(at, at + step);
      await ctx._decodeTokens(
        {
          sequenceId: seq._sequenceId,
          firstTokenSequenceIndex: first + at,
          tokens: part,
          logits: part.map(() => false),
          evaluationPriority: 5,
          tokenMeter: seq._tokenMeter,
        },
        () => undefined,
      );
      // node-llama-cpp's view of the sequence: what it holds (its positions
      // are offset, which only releaseBlock relies on), so that saving the
      // state names its tokens and clearing it drops every cell.
      seq._contextTokens = tokens.slice(0, at + part.length);
      seq._nextTokenIndex = at + part.length;
      onProgress?.(at + part.length, tokens.length);
    }
  }
  return { evaluatedTokens: tokens.length - reused, reusedTokens: reused, computeMs: performance.now() - startedAt };
}

/**
 * Leaves the sequence clean after a block: a block evaluated at offset
 * positions is dropped entirely (its cells do not match node-llama-cpp's
 * view of positions), a block at true positions stays as a prefix cache.
 */
export async function releaseBlock(sequence: LlamaContextSequence, block: BlockPrefill): Promise<void> {
  if (block.blockStart - block.anchorTokens.length !== 0) await clearSequence(sequence);
}

/**
 * Drops every cell of a sequence, also cells node-llama-cpp does not know of
 * (a block evaluated at offset positions, or one interrupted midway).
 */
export async function clearSequence(sequence: LlamaContextSequence): Promise<void> {
  const seq = sequence as unknown as InternalSequence;
  // clearHistory() erases [0, nextTokenIndex); when the cache's first cell is
  // not at position 0 node-llama-cpp falls back to disposing the whole
  // sequence in llama.cpp (under its context lock), which is what is wanted.
  if (seq._nextTokenIndex === 0) {
    seq._contextTokens = [0 as Token];
    seq._nextTokenIndex = 1;
  }
  await exclusive(sequence, () => sequence.clearHistory());
}
