import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import {
  ClusterError,
  ContextLengthError,
  UnavailableError,
  toClusterError,
  type ErrorCode,
} from "@smollm/common";
import {
  FinishReason as WireFinishReason,
  type GenerationFinished,
  type SchedulerService,
  type ServiceClient,
  type TokenLogprobs,
} from "@smollm/proto";
import type { GatewayMetrics } from "./metrics.ts";
import type { WorkerEjections } from "./worker-ejections.ts";
import type { FinishReason, TokenUsage } from "./sse-frames.ts";
import type { WorkerPool } from "./worker-pool.ts";

/** The scheduler's typed gRPC client. */
export type SchedulerClient = ServiceClient<(typeof SchedulerService)["method"]>;

/** What to generate; the sampling fields are already resolved (defaults applied). */
export interface GenerationParams {
  requestId: string;
  prompt: string;
  /** The client's limit, or undefined to generate up to `defaultMaxTokens` within the worker's context. */
  maxTokens: number | undefined;
  sampling: {
    temperature: number;
    topP: number;
    topK: number;
    minP: number;
    seed?: number;
    presencePenalty: number;
    frequencyPenalty: number;
  };
  stop: string[];
  ignoreEos: boolean;
  /** Never split the prefill across workers (block-parallel prefill approximates attention); default false. */
  exactPrefill?: boolean;
  /** Constrained decoding (structured output, forced function calls); none when absent. */
  constraint?: GenerationConstraint;
  /** Per-token log-probabilities with this many alternatives (0..20); none when absent. */
  topLogprobs?: number;
}

/** A JSON schema the output must satisfy, framed (see the worker's GenerateRequest.json_*). */
export interface GenerationConstraint {
  /** JSON text of a schema in node-llama-cpp's grammar subset (see json-schema-lowering.ts). */
  jsonSchema: string;
  prefix: string;
  suffix: string;
  /** 0 or 1: exactly one value; n > 1: one to n. */
  maxValues: number;
}

/** Receives a generation's events. `onDelta` gets only non-empty text. */
export interface GenerationSink {
  /** The worker took the request (again, after a retry). */
  onStarted(workerId: string, cachedTokens: number): void;
  /**
   * New text, accounting for `tokens` tokens. Returning a promise makes the
   * generation wait for it (back-pressure); a rejection ends the generation.
   * With `topLogprobs` set, `logprobs` has an entry per sampled token, and a
   * last call may bring empty text with the entries of tokens that gave none.
   */
  onDelta(text: string, tokens: number, logprobs?: readonly TokenLogprobs[]): Promise<void> | undefined;
}

/** How a generation ended. */
export interface GenerationResult {
  workerId: string;
  finishReason: FinishReason;
  usage: TokenUsage;
  retries: number;
}

/** Per-call limits of a generation. */
export interface GenerationCall {
  /** Aborted when the HTTP client goes away or stalls. */
  signal: AbortSignal;
  /** Absolute deadline, epoch ms. */
  deadline: number;
}

/** Worker errors after which another worker may well succeed. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(["unavailable", "resource_exhausted"]);

/** Options of {@link Generator}. */
export interface GeneratorOptions {
  scheduler: SchedulerClient;
  workers: WorkerPool;
  metrics: GatewayMetrics;
  logger: Logger;
  defaultMaxTokens: number;
  maxRetries: number;
  /**
   * A worker must acknowledge a Generate call (its response headers, sent
   * before it queues for a slot) within this many ms, else the attempt counts
   * as UNAVAILABLE and the request goes to another worker: a hung worker
   * (stopped, deadlocked, a port that accepts and never answers) stays in the
   * registry until its heartbeat expires. 0 disables; default 5 000.
   */
  workerAckTimeoutMs?: number;
  /**
   * Once a worker has streamed text, the longest it may then stay silent
   * (no message at all) before the attempt fails as UNAVAILABLE: the client
   * gets an error with the text it already has, and the call is cancelled so
   * the worker frees the slot if it comes back. Catches a worker that hangs
   * mid-stream (stopped, deadlocked, a black-holed link) long before the
   * request deadline. Time spent waiting for a slow client does not count.
   * 0 disables; default 30 000.
   */
  workerStallTimeoutMs?: number;
  /**
   * Workers this gateway failed to reach, avoided in routing for a while
   * (see WorkerEjections); default none.
   */
  ejections?: WorkerEjections;
  /** Deadline of one Route call (a hung scheduler), plus 5 ms per KiB of prompt; default 5 000. */
  routeTimeoutMs?: number;
  /**
   * How long a request keeps retrying Route, with backoff, while the
   * scheduler is unreachable or has no worker to offer; default 10 000.
   */
  routeRetryMs?: number;
}

/** First and largest pause between two Route attempts; each pause doubles, with jitter. */
const ROUTE_BACKOFF_MS = { first: 50, max: 1_000 } as const;

/**
 * Runs one completion across the cluster: the scheduler routes the rendered
 * prompt (and tokenizes it), the chosen worker streams the completion. A
 * worker that is unavailable or full before any text reached the sink is
 * excluded and the request routed again, up to `maxRetries` times; after
 * that, errors are the caller's to report.
 */
export class Generator {
  readonly #o: GeneratorOptions;

  constructor(options: GeneratorOptions) {
    this.#o = options;
  }

  async run(params: GenerationParams, sink: GenerationSink, call: GenerationCall): Promise<GenerationResult> {
    const metadata = { "x-request-id": params.requestId };
    const excludeWorkers: string[] = [];
    const progress = { delivered: false };
    const ackTimeoutMs = this.#o.workerAckTimeoutMs ?? 5_000;
    const stallTimeoutMs = this.#o.workerStallTimeoutMs ?? 30_000;
    let lastWorkerError: ClusterError | undefined;
    for (let attempt = 0; ; attempt++) {
      let route: Awaited<ReturnType<SchedulerClient["route"]>>;
      try {
        route = await this.#route(
          {
            requestId: params.requestId,
            prompt: params.prompt,
            // 0: the client set no limit, only the prompt has to fit; the limit is
            // then chosen below from the chosen worker's context size.
            maxTokens: params.maxTokens ?? 0,
            excludeWorkers,
            avoidWorkers: (this.#o.ejections?.active() ?? []).filter((id) => !excludeWorkers.includes(id)),
            exactPrefill: params.exactPrefill ?? false,
          },
          call,
          metadata,
        );
      } catch (thrown: unknown) {
        // Every worker tried was full and none is left: say so (429), not "no worker available".
        if (lastWorkerError?.code === "resource_exhausted" && toClusterError(thrown).code === "unavailable") throw lastWorkerError;
        throw thrown;
      }
      // This attempt's own signal: the caller's, plus the ack timer below.
      const attemptAbort = new AbortController();
      const onAbort = (): void => attemptAbort.abort(call.signal.reason);
      if (call.signal.aborted) onAbort();
      else call.signal.addEventListener("abort", onAbort, { once: true });
      const ackTimer =
        ackTimeoutMs > 0
          ? setTimeout(
              () =>
                attemptAbort.abort(
                  new UnavailableError(`worker ${route.workerId} did not answer within ${ackTimeoutMs} ms`, { retryAfterMs: 1_000 }),
                ),
              ackTimeoutMs,
            )
          : undefined;
      try {
        const maxTokens = this.#maxTokens(params.maxTokens, route.promptTokens.length, route.contextSize);
        const stream = this.#o.workers.get(route.workerAddress).generate(
          {
            requestId: params.requestId,
            promptTokens: route.promptTokens,
            sampling: params.sampling,
            maxTokens,
            stop: params.stop,
            ignoreEos: params.ignoreEos,
            ...(params.constraint === undefined
              ? {}
              : {
                  jsonSchema: params.constraint.jsonSchema,
                  jsonPrefix: params.constraint.prefix,
                  jsonSuffix: params.constraint.suffix,
                  jsonMaxValues: params.constraint.maxValues,
                }),
            ...(params.topLogprobs === undefined ? {} : { logprobs: true, topLogprobs: params.topLogprobs }),
            // Long prompts: the blocks other workers prefill for this one, or a prefix to fetch (docs/parallel-prefill.md).
            ...(route.parallelPrefill === undefined ? {} : { parallelPrefill: route.parallelPrefill }),
            ...(route.kvSource === undefined ? {} : { kvSource: route.kvSource }),
          },
          { signal: attemptAbort.signal, deadline: call.deadline, metadata, onHeaders: () => clearTimeout(ackTimer) },
        );
        const watch = new StallWatch(stallTimeoutMs, () => {
          this.#o.metrics.workerStalls.inc();
          attemptAbort.abort(
            new UnavailableError(`worker ${route.workerId} stopped streaming: nothing for ${stallTimeoutMs} ms`, { retryAfterMs: 1_000 }),
          );
        });
        let result: Omit<GenerationResult, "retries">;
        try {
          result = await consume(stream, sink, progress, route.workerId, route.promptTokens.length, watch);
        } finally {
          watch.disarm();
        }
        this.#o.ejections?.restore(route.workerId);
        return { ...result, retries: attempt };
      } catch (thrown: unknown) {
        // The ack timer's abort surfaces as a cancelled call: report why it was cancelled.
        const error = toClusterError(attemptAbort.signal.aborted && !call.signal.aborted ? attemptAbort.signal.reason : thrown);
        // Unreachable, hung or dead (not merely full): route around it for a while.
        if (error.code === "unavailable" && !call.signal.aborted && this.#o.ejections?.eject(route.workerId) === true) {
          this.#o.metrics.workerEjections.inc();
          this.#o.logger.warn({ request_id: params.requestId, worker_id: route.workerId, err: error }, "worker ejected from this gateway's routing");
        }
        if (progress.delivered || !RETRYABLE.has(error.code) || attempt >= this.#o.maxRetries || call.signal.aborted) {
          throw error;
        }
        lastWorkerError = error;
        excludeWorkers.push(route.workerId);
        this.#o.metrics.retries.inc({ code: error.code });
        this.#o.logger.warn(
          { request_id: params.requestId, worker_id: route.workerId, code: error.code, err: error, attempt },
          "worker failed before the first token, routing again",
        );
      } finally {
        clearTimeout(ackTimer);
        call.signal.removeEventListener("abort", onAbort);
      }
    }
  }

  /**
   * Asks the scheduler for a worker. While it cannot answer (restarting, a
   * connection reset, unreachable, or silent for `routeTimeoutMs`), and while
   * it has no worker to offer a request that has not tried one yet (the
   * registry refilling after Redis was flushed or restarted, workers
   * restarting), the call is retried with capped, jittered exponential
   * backoff for up to `routeRetryMs`, never past the request's deadline.
   * Its other answers are final: a bad prompt, a context that fits no worker,
   * and "none left" once workers were excluded (the caller reports that).
   */
  async #route(
    request: Parameters<SchedulerClient["route"]>[0],
    call: GenerationCall,
    metadata: Record<string, string>,
  ): Promise<Awaited<ReturnType<SchedulerClient["route"]>>> {
    // Tokenizing is linear in the prompt: a long one gets 5 ms more per KiB
    // (a 4 MiB prompt, the largest the scheduler takes, about 20 s more), so a
    // slow answer is not mistaken for a hung scheduler and tokenized twice.
    const routeTimeoutMs = (this.#o.routeTimeoutMs ?? 5_000) + Math.ceil((request.prompt ?? "").length / 1024) * 5;
    const giveUpAt = Math.min(call.deadline, Date.now() + (this.#o.routeRetryMs ?? 10_000));
    const firstTry = (request.excludeWorkers?.length ?? 0) === 0;
    for (let attempt = 0; ; attempt++) {
      const attemptDeadline = Math.min(call.deadline, Date.now() + routeTimeoutMs);
      try {
        return await this.#o.scheduler.route(request, { signal: call.signal, deadline: attemptDeadline, metadata });
      } catch (thrown: unknown) {
        let error = toClusterError(thrown);
        if (error.code === "deadline_exceeded" && attemptDeadline < call.deadline) {
          error = new UnavailableError(`the scheduler did not answer within ${routeTimeoutMs} ms`, { cause: thrown, retryAfterMs: 1_000 });
        }
        const pause = Math.min(ROUTE_BACKOFF_MS.max, ROUTE_BACKOFF_MS.first * 2 ** attempt) * (0.5 + Math.random() / 2);
        if (error.code !== "unavailable" || !firstTry || call.signal.aborted || Date.now() + pause >= giveUpAt) throw error;
        this.#o.logger.warn(
          { request_id: request.requestId, code: error.code, err: error, attempt, retry_in_ms: Math.round(pause) },
          "routing failed, retrying",
        );
        try {
          await sleep(pause, undefined, { signal: call.signal });
        } catch {
          throw toClusterError(call.signal.reason ?? error);
        }
      }
    }
  }

  #maxTokens(requested: number | undefined, promptTokens: number, contextSize: number): number {
    if (requested !== undefined) return requested;
    if (contextSize === 0) return this.#o.defaultMaxTokens;
    const room = contextSize - promptTokens;
    if (room <= 0) {
      throw new ContextLengthError(
        `This model's maximum context length is ${contextSize} tokens. However, your messages resulted in ${promptTokens} tokens. Please reduce the length of the messages.`,
        { param: "messages" },
      );
    }
    return Math.min(this.#o.defaultMaxTokens, room);
  }
}

type WorkerStream = AsyncIterable<{
  event:
    | { case: "started"; value: { workerId: string; cachedTokens: number; promptTokens: number } }
    | { case: "delta"; value: { text: string; tokens: number; logprobs: TokenLogprobs[] } }
    | { case: "finished"; value: GenerationFinished }
    | { case: undefined; value?: undefined };
}>;

// The hot loop: one iteration per worker message, no allocation of its own.
/**
 * The mid-stream silence timer of one attempt: armed while the gateway waits
 * for the worker's next message (after the first text), disarmed while it
 * handles one, including the wait for a slow client.
 */
class StallWatch {
  readonly #ms: number;
  readonly #onStall: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number, onStall: () => void) {
    this.#ms = ms;
    this.#onStall = onStall;
  }

  arm(): void {
    if (this.#ms <= 0) return;
    this.disarm();
    this.#timer = setTimeout(this.#onStall, this.#ms);
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

async function consume(
  stream: WorkerStream,
  sink: GenerationSink,
  progress: { delivered: boolean },
  routedWorkerId: string,
  routedPromptTokens: number,
  watch: StallWatch,
): Promise<Omit<GenerationResult, "retries">> {
  let workerId = routedWorkerId;
  let cachedTokens = 0;
  let promptTokens = routedPromptTokens;
  let completionTokens = 0;
  // Tokens of deltas with no text yet (bytes of a split character) count with the next text.
  let pendingTokens = 0;
  let pendingLogprobs: TokenLogprobs[] = [];
  let finished: GenerationFinished | undefined;
  for await (const message of stream) {
    watch.disarm();
    const event = message.event;
    switch (event.case) {
      case "delta": {
        const tokens = event.value.tokens;
        completionTokens += tokens;
        const logprobs = event.value.logprobs;
        if (event.value.text.length === 0) {
          pendingTokens += tokens;
          if (logprobs.length > 0) pendingLogprobs = pendingLogprobs.concat(logprobs);
          break;
        }
        progress.delivered = true;
        let wait: Promise<void> | undefined;
        if (logprobs.length === 0 && pendingLogprobs.length === 0) {
          wait = sink.onDelta(event.value.text, tokens + pendingTokens);
        } else {
          wait = sink.onDelta(event.value.text, tokens + pendingTokens, pendingLogprobs.length === 0 ? logprobs : pendingLogprobs.concat(logprobs));
          pendingLogprobs = [];
        }
        pendingTokens = 0;
        if (wait !== undefined) await wait;
        break;
      }
      case "started":
        if (event.value.workerId !== "") workerId = event.value.workerId;
        cachedTokens = event.value.cachedTokens;
        if (event.value.promptTokens > 0) promptTokens = event.value.promptTokens;
        sink.onStarted(workerId, cachedTokens);
        break;
      case "finished":
        finished = event.value;
        break;
      default:
        break;
    }
    // Before the first text the worker may be queued or prefilling a long
    // prompt for minutes; the ack timeout and the request deadline cover that.
    if (progress.delivered) watch.arm();
  }
  if (finished === undefined) {
    throw new ClusterError("internal", "internal error", {
      cause: new Error(`worker ${workerId} ended the stream without a finished event`),
    });
  }
  if (pendingLogprobs.length > 0) {
    const wait = sink.onDelta("", pendingTokens, pendingLogprobs);
    if (wait !== undefined) await wait;
  }
  let finishReason: FinishReason;
  switch (finished.reason) {
    case WireFinishReason.LENGTH:
      finishReason = "length";
      break;
    case WireFinishReason.CANCELLED:
      // We did not cancel (our abort would have ended the stream with an error): the worker gave up.
      throw new UnavailableError("the worker cancelled the generation");
    default:
      finishReason = "stop";
  }
  const usage = finished.usage;
  return {
    workerId,
    finishReason,
    usage:
      usage === undefined
        ? { promptTokens, completionTokens, cachedTokens }
        : {
            promptTokens: usage.promptTokens,
            completionTokens: usage.completionTokens,
            cachedTokens: usage.cachedTokens,
          },
  };
}
