import type { Logger } from "pino";
import {
  ClusterError,
  ContextLengthError,
  UnavailableError,
  toClusterError,
  type ErrorCode,
} from "@smollm/common";
import { FinishReason as WireFinishReason, type GenerationFinished, type SchedulerService, type ServiceClient } from "@smollm/proto";
import type { GatewayMetrics } from "./metrics.ts";
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
}

/** Receives a generation's events. `onDelta` gets only non-empty text. */
export interface GenerationSink {
  /** The worker took the request (again, after a retry). */
  onStarted(workerId: string, cachedTokens: number): void;
  /**
   * New text, accounting for `tokens` tokens. Returning a promise makes the
   * generation wait for it (back-pressure); a rejection ends the generation.
   */
  onDelta(text: string, tokens: number): Promise<void> | undefined;
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
}

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
    const callOptions = { signal: call.signal, deadline: call.deadline, metadata };
    const excludeWorkers: string[] = [];
    const progress = { delivered: false };
    for (let attempt = 0; ; attempt++) {
      const route = await this.#o.scheduler.route(
        {
          requestId: params.requestId,
          prompt: params.prompt,
          // 0: the client set no limit, only the prompt has to fit; the limit is
          // then chosen below from the chosen worker's context size.
          maxTokens: params.maxTokens ?? 0,
          excludeWorkers,
        },
        callOptions,
      );
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
          },
          callOptions,
        );
        const result = await consume(stream, sink, progress, route.workerId, route.promptTokens.length);
        return { ...result, retries: attempt };
      } catch (thrown: unknown) {
        const error = toClusterError(thrown);
        if (progress.delivered || !RETRYABLE.has(error.code) || attempt >= this.#o.maxRetries || call.signal.aborted) {
          throw error;
        }
        excludeWorkers.push(route.workerId);
        this.#o.metrics.retries.inc({ code: error.code });
        this.#o.logger.warn(
          { request_id: params.requestId, worker_id: route.workerId, code: error.code, err: error, attempt },
          "worker failed before the first token, routing again",
        );
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
    | { case: "delta"; value: { text: string; tokens: number } }
    | { case: "finished"; value: GenerationFinished }
    | { case: undefined; value?: undefined };
}>;

// The hot loop: one iteration per worker message, no allocation of its own.
async function consume(
  stream: WorkerStream,
  sink: GenerationSink,
  progress: { delivered: boolean },
  routedWorkerId: string,
  routedPromptTokens: number,
): Promise<Omit<GenerationResult, "retries">> {
  let workerId = routedWorkerId;
  let cachedTokens = 0;
  let promptTokens = routedPromptTokens;
  let completionTokens = 0;
  // Tokens of deltas with no text yet (bytes of a split character) count with the next text.
  let pendingTokens = 0;
  let finished: GenerationFinished | undefined;
  for await (const message of stream) {
    const event = message.event;
    switch (event.case) {
      case "delta": {
        const tokens = event.value.tokens;
        completionTokens += tokens;
        if (event.value.text.length === 0) {
          pendingTokens += tokens;
          break;
        }
        progress.delivered = true;
        const wait = sink.onDelta(event.value.text, tokens + pendingTokens);
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
  }
  if (finished === undefined) {
    throw new ClusterError("internal", "internal error", {
      cause: new Error(`worker ${workerId} ended the stream without a finished event`),
    });
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
