/**
 * The receiving side of KV transfer: a generation's slot gets its prompt's KV
 * from other workers before the engine evaluates what is left.
 *
 * Block-parallel prefill: the plan (from the scheduler) cuts positions
 * [0, prompt - 1) into blocks; each remote block is pulled from its worker
 * (PrefillBlock), the block assigned to this worker is computed in the
 * generation's own slot, and every block stream is written straight into one
 * assembled state file, which is then loaded into the slot. The engine
 * evaluates the last prompt token itself, for the logits of the first sampled
 * token. A block whose worker fails, stalls or sends corrupt data is computed
 * here instead (failover); only when that fails too does the generation fail,
 * before its first token, so the gateway can retry it elsewhere.
 *
 * Prefix fetch: the KV of a cached prefix is pulled from the worker holding
 * it (ExportPrefix); any failure just means computing it here.
 */
import { mkdir } from "node:fs/promises";
import type { ChannelCredentials } from "@grpc/grpc-js";
import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";
import type { Logger } from "pino";
import { CancelledError, InvalidRequestError, UnavailableError, toClusterError } from "@smollm/common";
import { KvTransferService, createClient, type KvSource, type ParallelPrefillPlan, type ServiceClient } from "@smollm/proto";
import { prefillBlock, releaseBlock, type BlockPrefill } from "./block-prefill.ts";
import type { GenerateHooks } from "./engine.ts";
import type { KvTransferMetrics } from "./metrics.ts";
import { KvAssembler, copyBlock, readSequenceState } from "./kv-state-file.ts";
import { removeQuietly, type KvScratch } from "./kv-scratch.ts";
import { BlockReceiver, KvStreamError, type KvStreamMessage } from "./kv-wire.ts";
import { exclusive } from "./context-gate.ts";

export type KvTransferClient = ServiceClient<(typeof KvTransferService)["method"]>;

/** One gRPC channel per peer worker, made on first use. */
export class KvClientPool {
  readonly #clients = new Map<string, KvTransferClient>();
  readonly #credentials: ChannelCredentials | undefined;

  constructor(credentials?: ChannelCredentials) {
    this.#credentials = credentials;
  }

  get(address: string): KvTransferClient {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = createClient(KvTransferService, address, this.#credentials === undefined ? {} : { credentials: this.#credentials });
      this.#clients.set(address, client);
    }
    return client;
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

/** Options of {@link KvImporter}. */
export interface KvImporterOptions {
  context: LlamaContext;
  clients: { get(address: string): KvTransferClient };
  scratch: KvScratch;
  metrics: KvTransferMetrics;
  logger: Logger;
  /** This worker's id: blocks assigned to it are computed locally. */
  workerId: string;
  chunkBytes: number;
  stepTokens: number;
  /** A peer that sends nothing (not even progress) for this long is given up. */
  stallTimeoutMs: number;
}

/** What the gateway passes on from the scheduler for one generation. */
export interface KvImportRequest {
  requestId: string;
  promptTokens: readonly number[];
  parallelPrefill?: ParallelPrefillPlan | undefined;
  kvSource?: KvSource | undefined;
}

interface Block {
  readonly id: number;
  readonly start: number;
  readonly end: number;
  readonly workerId: string;
  readonly address: string;
}

/** Pulls KV from other workers into a generation's slot. */
export class KvImporter {
  readonly #o: KvImporterOptions;

  constructor(options: KvImporterOptions) {
    this.#o = options;
  }

  /** The engine hooks for a request, or undefined when it needs no transfer. */
  hooksFor(request: KvImportRequest): GenerateHooks | undefined {
    const plan = request.parallelPrefill;
    if (plan !== undefined && plan.blocks.length > 0) {
      return { prepare: (sequence, signal) => this.parallelPrefill(sequence, request.promptTokens, plan, signal, request.requestId) };
    }
    const source = request.kvSource;
    if (source !== undefined && source.tokens > 0 && source.workerAddress !== "" && source.workerId !== this.#o.workerId) {
      return { prepare: (sequence, signal) => this.fetchPrefix(sequence, request.promptTokens, source, signal, request.requestId) };
    }
    return undefined;
  }

  /**
   * Fills `sequence` with the KV of prompt[0, prompt - 1) following `plan`.
   * Resolves to the number of tokens computed (not cached).
   */
  async parallelPrefill(
    sequence: LlamaContextSequence,
    prompt: readonly number[],
    plan: ParallelPrefillPlan,
    signal: AbortSignal,
    requestId: string,
  ): Promise<number> {
    const { metrics } = this.#o;
    const n = prompt.length - 1;
    const blocks = this.#checkPlan(plan, n);
    const cells = prompt.slice(0, n);
    const anchorOf = (start: number): number[] =>
      plan.fullAnchor ? cells.slice(0, start) : cells.slice(0, Math.min(plan.anchorTokens, start));
    const log = this.#o.logger.child({ request_id: requestId, prompt_tokens: prompt.length, blocks: blocks.length });
    const path = this.#o.scratch.file("assembled");
    await mkdir(this.#o.scratch.dir, { recursive: true });
    const assembler = new KvAssembler(path, cells, this.#o.context.totalSequences);
    // Stops the other blocks when one fails for good, and everything on cancel.
    const inner = new AbortController();
    const onAbort = (): void => inner.abort(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    // The slot computes one block at a time: its own, then any failed over.
    let local: Promise<unknown> = Promise.resolve();
    const computeHere = (block: Block): Promise<void> => {
      const job = local.then(() => this.#computeLocally(sequence, block, anchorOf(block.start), cells, assembler, inner.signal));
      local = job.catch(() => {});
      return job;
    };
    // A peer with several blocks prefills them one after another (it would
    // only queue them for its slots, and a long queue wait reads as failure).
    // A peer that failed once gets none of its remaining blocks.
    const peers = new Map<string, Promise<unknown>>();
    const failedPeers = new Set<string>();
    const transfers: { bytes: number; streamMs: number }[] = [];
    const fromPeer = (block: Block): Promise<void> => {
      const job = (peers.get(block.address) ?? Promise.resolve()).then(async () => {
        if (inner.signal.aborted) throw new CancelledError();
        if (failedPeers.has(block.address)) throw new UnavailableError(`worker ${block.workerId} failed an earlier block`);
        try {
          transfers.push(await this.#pullBlock(block, anchorOf(block.start), cells, assembler, inner.signal, requestId));
        } catch (error: unknown) {
          if (!inner.signal.aborted) failedPeers.add(block.address);
          throw error;
        }
      });
      peers.set(block.address, job.catch(() => {}));
      return job;
    };
    const startedAt = performance.now();
    let failovers = 0;
    const jobs = blocks.map(async (block) => {
      if (block.address === "" || block.workerId === this.#o.workerId) return computeHere(block);
      try {
        await fromPeer(block);
      } catch (error: unknown) {
        if (inner.signal.aborted) throw error;
        failovers++;
        metrics.blockFailovers.inc();
        log.warn({ err: error, block_start: block.start, block_end: block.end, peer: block.workerId }, "prefill block failed on its worker; computing it here");
        assembler.resetBlock(block.id);
        return computeHere(block);
      }
    });
    let outcome = "error";
    try {
      const results = await Promise.allSettled(jobs.map((job) => job.catch((error: unknown) => {
        inner.abort(error);
        throw error;
      })));
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      // The root cause, not the cancellations it caused in the other blocks.
      const failed = rejected.find((r) => toClusterError(r.reason).code !== "cancelled") ?? rejected[0];
      if (failed !== undefined) {
        if (signal.aborted) throw new CancelledError();
        const e = toClusterError(failed.reason);
        throw e.code === "invalid_argument" || e.code === "context_length_exceeded"
          ? e
          : new UnavailableError(`block-parallel prefill failed: ${e.message}`, { cause: failed.reason, retryAfterMs: 0 });
      }
      await assembler.finish();
      const loadStart = performance.now();
      try {
        await exclusive(sequence, () => sequence.loadStateFromFile(path, { acceptRisk: true }));
      } catch (error: unknown) {
        // E.g. workers whose contexts differ in flash attention (V layout) or model.
        throw new UnavailableError("the assembled KV could not be loaded", { cause: error, retryAfterMs: 0 });
      }
      if (sequence.nextTokenIndex !== n) throw new UnavailableError(`loaded ${sequence.nextTokenIndex} of ${n} prompt tokens`);
      outcome = "ok";
      log.info(
        {
          assembled_tokens: n,
          kv_bytes: assembler.bytesWritten,
          // KV that crossed the network, and the longest time one block's bytes took from header to trailer.
          transferred_bytes: transfers.reduce((a, t) => a + t.bytes, 0),
          transfer_ms: Math.round(Math.max(0, ...transfers.map((t) => t.streamMs))),
          failovers,
          prefill_ms: Math.round(performance.now() - startedAt),
          load_ms: Math.round(performance.now() - loadStart),
        },
        "block-parallel prefill assembled",
      );
      return n;
    } catch (error: unknown) {
      if (signal.aborted) outcome = "cancelled";
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      inner.abort(new CancelledError());
      metrics.parallelPrefills.inc({ outcome });
      await assembler.close();
      await removeQuietly(path);
    }
  }

  /**
   * Loads the KV of prompt[0, source.tokens) from the worker holding it.
   * Never fails the generation: on any problem the engine computes the prefix.
   */
  async fetchPrefix(
    sequence: LlamaContextSequence,
    prompt: readonly number[],
    source: KvSource,
    signal: AbortSignal,
    requestId: string,
  ): Promise<number> {
    const { metrics } = this.#o;
    const n = Math.min(source.tokens, prompt.length - 1);
    const have = sequence.compareContextTokens(prompt as never).firstDifferentIndex;
    if (n <= have || n < 1) {
      metrics.prefixFetches.inc({ outcome: "skipped" });
      return 0;
    }
    const cells = prompt.slice(0, n);
    const path = this.#o.scratch.file("prefix-in");
    const assembler = new KvAssembler(path, cells, this.#o.context.totalSequences);
    const log = this.#o.logger.child({ request_id: requestId, peer: source.workerId, prefix_tokens: n });
    const startedAt = performance.now();
    try {
      await mkdir(this.#o.scratch.dir, { recursive: true });
      const receiver = new BlockReceiver(assembler, 0, 0, n);
      const client = this.#o.clients.get(source.workerAddress);
      await this.#receive(
        (callSignal) => client.exportPrefix({ requestId, tokens: cells, chunkBytes: this.#o.chunkBytes }, { signal: callSignal, metadata: { "x-request-id": requestId } }),
        receiver,
        signal,
        source.workerId,
      );
      await assembler.finish();
      await exclusive(sequence, () => sequence.loadStateFromFile(path, { acceptRisk: true }));
      if (sequence.nextTokenIndex !== n) throw new KvStreamError(`loaded ${sequence.nextTokenIndex} of ${n} prefix tokens`);
      metrics.bytes.inc({ direction: "received", kind: "prefix" }, receiver.bytes);
      metrics.transferDuration.observe({ kind: "prefix" }, (performance.now() - startedAt) / 1000);
      metrics.prefixFetches.inc({ outcome: "ok" });
      log.debug({ kv_bytes: receiver.bytes, ms: Math.round(performance.now() - startedAt) }, "prefix fetched");
      return 0;
    } catch (error: unknown) {
      if (signal.aborted) throw new CancelledError();
      metrics.prefixFetches.inc({ outcome: "failed" });
      log.warn({ err: error }, "prefix fetch failed; computing it here");
      return 0;
    } finally {
      await assembler.close();
      await removeQuietly(path);
    }
  }

  #checkPlan(plan: ParallelPrefillPlan, n: number): Block[] {
    let at = 0;
    const blocks = plan.blocks.map((b, id) => {
      if (b.start !== at || b.end <= b.start) throw new InvalidRequestError(`parallel_prefill block ${id} is [${b.start}, ${b.end}), expected to start at ${at}`);
      at = b.end;
      return { id, start: b.start, end: b.end, workerId: b.workerId, address: b.workerAddress };
    });
    if (at !== n) throw new InvalidRequestError(`parallel_prefill blocks cover [0, ${at}), the prompt needs [0, ${n})`);
    if (!plan.fullAnchor && plan.anchorTokens === 0 && blocks.length > 1) {
      // Allowed (blocks see only themselves), but worth knowing about.
      this.#o.logger.debug("parallel prefill without an anchor");
    }
    return blocks;
  }

  async #computeLocally(
    sequence: LlamaContextSequence,
    b: Block,
    anchor: number[],
    cells: readonly number[],
    assembler: KvAssembler,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) throw new CancelledError();
    const block: BlockPrefill = { anchorTokens: anchor, blockTokens: cells.slice(b.start, b.end), blockStart: b.start };
    const file = this.#o.scratch.file("local-block");
    try {
      try {
        await prefillBlock(this.#o.context, sequence, block, { stepTokens: this.#o.stepTokens, signal });
        await exclusive(sequence, () => sequence.saveStateToFile(file));
      } finally {
        await releaseBlock(sequence, block);
      }
      await copyBlock(await readSequenceState(file), b.start, b.end - b.start, assembler, b.id, this.#o.chunkBytes);
    } finally {
      await removeQuietly(file);
    }
  }

  /** Pulls one block from its worker; resolves to its size and how long its bytes took (header to trailer). */
  async #pullBlock(
    b: Block,
    anchor: number[],
    cells: readonly number[],
    assembler: KvAssembler,
    signal: AbortSignal,
    requestId: string,
  ): Promise<{ bytes: number; streamMs: number }> {
    const receiver = new BlockReceiver(assembler, b.id, b.start, b.end - b.start);
    const client = this.#o.clients.get(b.address);
    const startedAt = performance.now();
    await this.#receive(
      (callSignal) =>
        client.prefillBlock(
          { requestId, anchorTokens: anchor, blockTokens: cells.slice(b.start, b.end), blockStart: b.start, chunkBytes: this.#o.chunkBytes },
          { signal: callSignal, metadata: { "x-request-id": requestId } },
        ),
      receiver,
      signal,
      b.workerId,
    );
    this.#o.metrics.bytes.inc({ direction: "received", kind: "block" }, receiver.bytes);
    this.#o.metrics.transferDuration.observe({ kind: "block" }, (performance.now() - startedAt) / 1000);
    return { bytes: receiver.bytes, streamMs: receiver.streamMs };
  }

  /** Runs one streaming call into a receiver, giving the peer up when it sends nothing for the stall timeout. */
  async #receive(
    call: (signal: AbortSignal) => AsyncIterable<KvStreamMessage>,
    receiver: BlockReceiver,
    signal: AbortSignal,
    peer: string,
  ): Promise<void> {
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        abort.abort(new UnavailableError(`worker ${peer} sent nothing for ${this.#o.stallTimeoutMs} ms`));
      }, this.#o.stallTimeoutMs);
    };
    try {
      arm();
      for await (const message of call(abort.signal)) {
        arm();
        if (await receiver.accept(message)) break;
      }
      if (!receiver.done) throw new KvStreamError(`worker ${peer} ended the KV stream early`);
    } catch (error: unknown) {
      if (stalled) throw new UnavailableError(`worker ${peer} stalled for ${this.#o.stallTimeoutMs} ms`, { cause: error });
      if (signal.aborted) throw new CancelledError();
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
