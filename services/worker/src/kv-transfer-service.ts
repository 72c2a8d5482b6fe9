/**
 * The sending side of KV transfer (smollm.internal.v1.KvTransferService):
 * prefilling one block of another worker's long prompt, and exporting a
 * cached prefix. Both take a slot like a generation does (so they queue
 * behind, and count as, the worker's load), save its state to a scratch file,
 * give the slot back, and stream the wanted cells from the file.
 */
import type { Logger } from "pino";
import { CancelledError, ClusterError, InvalidRequestError, toClusterError } from "@smollm/common";
import type { ExportPrefixRequest, PrefillBlockRequest } from "@smollm/proto";
import { clearSequence, prefillBlock, releaseBlock, type BlockPrefill, type BlockPrefillResult } from "./block-prefill.ts";
import type { Engine } from "./engine.ts";
import type { KvTransferMetrics } from "./metrics.ts";
import type { LoadedModel } from "./model-loader.ts";
import { readSequenceState } from "./kv-state-file.ts";
import { removeQuietly, type KvScratch } from "./kv-scratch.ts";
import { blockStreamEvents, type KvStreamEvent } from "./kv-wire.ts";
import { exclusive } from "./context-gate.ts";

/** Options of {@link kvTransferHandlers}. */
export interface KvTransferServiceOptions {
  engine: Engine;
  loaded: Pick<LoadedModel, "context" | "vocabSize">;
  scratch: KvScratch;
  metrics: KvTransferMetrics;
  logger: Logger;
  /** Default and largest chunk size. */
  chunkBytes: number;
  stepTokens: number;
  /** Progress is re-sent at least this often while waiting or computing, so receivers can tell slow from stalled. */
  heartbeatMs: number;
}

type Out = { event: KvStreamEvent };

function checkTokens(tokens: readonly number[], vocab: number, param: string): void {
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new InvalidRequestError(`token ${t} is outside the vocabulary (size ${vocab})`, { param });
  }
}

function chunkSize(requested: number, max: number): number {
  return requested === 0 ? max : Math.max(4096, Math.min(requested, max));
}

/**
 * Runs `work` (which reports progress through the callback it is given) and
 * yields progress messages meanwhile: on each report, and a heartbeat when
 * nothing happened for `heartbeatMs` (waiting for a slot, a slow step).
 */
async function* progressOf<T>(
  work: (onProgress: (done: number, total: number) => void) => Promise<T>,
  total: number,
  heartbeatMs: number,
  result: { value?: T },
): AsyncGenerator<Out, void, undefined> {
  let latest = { done: 0, total };
  let fresh = false;
  let finished = false;
  let wake: (() => void) | undefined;
  const task = work((done, all) => {
    latest = { done, total: all };
    fresh = true;
    wake?.();
  });
  task.then(
    (value) => {
      result.value = value;
      finished = true;
      wake?.();
    },
    () => {
      finished = true;
      wake?.();
    },
  );
  try {
    while (!finished) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          fresh = true;
          resolve();
        }, heartbeatMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (fresh || finished) wake();
      });
      wake = undefined;
      if (fresh && !finished) {
        fresh = false;
        yield { event: { case: "progress", value: { tokensDone: latest.done, tokensTotal: latest.total } } };
      }
    }
    await task;
  } finally {
    // Leaving early (the caller went away): the work is being aborted by the
    // call's signal; wait for it so its slot and files are back in order.
    await task.catch(() => {});
  }
}

/** Handlers of KvTransferService. */
export function kvTransferHandlers(options: KvTransferServiceOptions) {
  const { engine, loaded, scratch, metrics, logger } = options;
  return {
    prefillBlock: async function* (request: PrefillBlockRequest, context: { signal: AbortSignal }): AsyncGenerator<Out, void, undefined> {
      checkTokens(request.anchorTokens, loaded.vocabSize, "anchor_tokens");
      checkTokens(request.blockTokens, loaded.vocabSize, "block_tokens");
      const block: BlockPrefill = { anchorTokens: request.anchorTokens, blockTokens: request.blockTokens, blockStart: request.blockStart };
      if (block.blockTokens.length === 0) throw new InvalidRequestError("block_tokens is empty", { param: "block_tokens" });
      if (block.anchorTokens.length > block.blockStart) {
        throw new InvalidRequestError("the anchor is longer than the block's start", { param: "anchor_tokens" });
      }
      const tokens = [...block.anchorTokens, ...block.blockTokens];
      const file = scratch.file("block");
      const log = logger.child({ request_id: request.requestId, block_start: block.blockStart, block_tokens: block.blockTokens.length });
      metrics.blocksActive.inc();
      let outcome = "error";
      try {
        const done: { value?: BlockPrefillResult } = {};
        yield* progressOf(
          (onProgress) =>
            engine.withSlot(tokens, context.signal, async (sequence, signal) => {
              try {
                const result = await prefillBlock(loaded.context, sequence, block, { stepTokens: options.stepTokens, signal, onProgress });
                await exclusive(sequence, () => sequence.saveStateToFile(file));
                return result;
              } catch (error: unknown) {
                // Cells of an interrupted block must not stay behind as a bogus cache.
                await clearSequence(sequence).catch(() => {});
                throw error;
              } finally {
                await releaseBlock(sequence, block);
              }
            }),
          tokens.length,
          options.heartbeatMs,
          done,
        );
        const result = done.value!;
        const state = await readSequenceState(file);
        yield* blockStreamEvents(state, block.blockStart, block.blockTokens.length, {
          chunkBytes: chunkSize(request.chunkBytes, options.chunkBytes),
          computeMs: result.computeMs,
          reusedTokens: result.reusedTokens,
          onChunk: (bytes) => metrics.bytes.inc({ direction: "sent", kind: "block" }, bytes),
        });
        outcome = "ok";
        log.debug({ compute_ms: result.computeMs, reused_tokens: result.reusedTokens }, "prefill block sent");
      } catch (error: unknown) {
        if (context.signal.aborted || toClusterError(error).code === "cancelled") outcome = "cancelled";
        else log.warn({ err: error }, "prefill block failed");
        throw error;
      } finally {
        if (context.signal.aborted) outcome = outcome === "ok" ? "ok" : "cancelled";
        metrics.blocksActive.dec();
        metrics.blocksServed.inc({ outcome });
        await removeQuietly(file);
      }
    },

    exportPrefix: async function* (request: ExportPrefixRequest, context: { signal: AbortSignal }): AsyncGenerator<Out, void, undefined> {
      const tokens = request.tokens;
      if (tokens.length === 0) throw new InvalidRequestError("tokens is empty", { param: "tokens" });
      checkTokens(tokens, loaded.vocabSize, "tokens");
      const file = scratch.file("prefix");
      try {
        const startedAt = performance.now();
        const done: { value?: number } = {};
        yield* progressOf(
          () =>
            engine.withSlot(tokens, context.signal, async (sequence, signal) => {
              if (signal.aborted) throw new CancelledError();
              const held = sequence.compareContextTokens(tokens as never).firstDifferentIndex;
              if (held < tokens.length) {
                throw new ClusterError("not_found", `no free slot holds this ${tokens.length}-token prefix (best: ${held})`);
              }
              await exclusive(sequence, () => sequence.saveStateToFile(file));
              return held;
            }),
          tokens.length,
          options.heartbeatMs,
          done,
        );
        const state = await readSequenceState(file);
        yield* blockStreamEvents(state, 0, tokens.length, {
          chunkBytes: chunkSize(request.chunkBytes, options.chunkBytes),
          computeMs: performance.now() - startedAt,
          reusedTokens: tokens.length,
          onChunk: (bytes) => metrics.bytes.inc({ direction: "sent", kind: "prefix" }, bytes),
        });
      } finally {
        await removeQuietly(file);
      }
    },
  };
}
