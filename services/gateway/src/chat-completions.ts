import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { CancelledError } from "@smollm/common";
import type { TokenLogprobs } from "@smollm/proto";
import { modelNotFound } from "./api-error.ts";
import { writeChunk } from "./backpressure.ts";
import { parseChatCompletionRequest, type ChatCompletionRequest } from "./chat-request.ts";
import { CompletionOutput, type OutputDelta } from "./completion-output.ts";
import type { GatewayConfig } from "./config.ts";
import type { GenerationResult, GenerationSink, Generator } from "./generation.ts";
import { generationParams } from "./generation-params.ts";
import { errorBody, toHttpError, type HttpError } from "./http-errors.ts";
import { toLogprobContent } from "./logprobs.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { readJsonBody } from "./request-body.ts";
import { completionId } from "./request-id.ts";
import { SSE_DONE, SseFrames, sseErrorFrame, usageObject, type LogprobContent } from "./sse-frames.ts";

/** What the chat completions handler needs from the gateway. */
export interface ChatCompletionsDeps {
  config: GatewayConfig;
  logger: Logger;
  metrics: GatewayMetrics;
  generator: Generator;
  /** Names accepted in `model`. */
  models: ReadonlySet<string>;
  systemFingerprint: string;
}

/**
 * Serves one `POST /v1/chat/completions`: validates, renders the prompt,
 * generates through the cluster and answers as OpenAI does, streamed (SSE) or
 * whole. Never throws: every failure becomes an error response, an SSE error
 * event, or (client gone) nothing; each request is counted and logged once.
 */
export async function serveChatCompletion(
  deps: ChatCompletionsDeps,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
): Promise<void> {
  await new ChatCompletionExchange(deps, req, res, requestId).serve();
}

class ChatCompletionExchange implements GenerationSink {
  readonly #deps: ChatCompletionsDeps;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #requestId: string;
  readonly #abort = new AbortController();
  readonly #startedAt = performance.now();
  #stream = false;
  /** Stream mode: headers and the role frame are out, so no retry and no HTTP error status any more. */
  #committed = false;
  #frames: SseFrames | undefined;
  #workerId = "";
  #firstTokenAt = 0;
  #lastTokenAt = 0;
  /** Reads the raw text into reasoning, answer and function calls. */
  #output: CompletionOutput | undefined;
  /** With logprobs: non-stream mode, every token's; stream mode, those not yet sent. */
  #logprobs: LogprobContent[] | undefined;

  constructor(deps: ChatCompletionsDeps, req: IncomingMessage, res: ServerResponse, requestId: string) {
    this.#deps = deps;
    this.#req = req;
    this.#res = res;
    this.#requestId = requestId;
  }

  async serve(): Promise<void> {
    const { metrics } = this.#deps;
    metrics.inFlight.inc();
    const onClose = (): void => {
      if (!this.#res.writableFinished) this.#abort.abort(new CancelledError("client disconnected"));
    };
    this.#res.on("close", onClose);
    let result: GenerationResult | undefined;
    let failure: HttpError | undefined;
    try {
      const body = await readJsonBody(this.#req, this.#deps.config.maxBodyBytes);
      const request = parseChatCompletionRequest(body);
      if (!this.#deps.models.has(request.model)) throw modelNotFound(request.model);
      this.#stream = request.stream;
      result = await this.#generate(request);
    } catch (thrown: unknown) {
      failure = toHttpError(this.#abort.signal.aborted ? (this.#abort.signal.reason ?? thrown) : thrown);
      this.#fail(failure);
    } finally {
      this.#res.off("close", onClose);
      metrics.inFlight.dec();
      this.#record(result, failure);
    }
  }

  async #generate(request: ChatCompletionRequest): Promise<GenerationResult> {
    const { config, generator } = this.#deps;
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    const model = config.modelId;
    if (this.#stream) {
      this.#frames = new SseFrames(id, created, model, this.#deps.systemFingerprint, request.includeUsage);
    }
    const output = new CompletionOutput(request);
    this.#output = output;
    if (request.topLogprobs !== undefined) this.#logprobs = [];
    const result = await generator.run(
      generationParams(request, config, this.#requestId),
      this,
      { signal: this.#abort.signal, deadline: Date.now() + config.requestTimeoutMs },
    );
    this.#workerId = result.workerId;
    const { deltas, finishReason } = output.finish(result.finishReason);
    const frames = this.#frames;
    if (frames !== undefined) {
      let tail = this.#framesOf(frames, deltas);
      tail += frames.finish(finishReason, this.#takeLogprobs());
      if (request.includeUsage) tail += frames.usage(result.usage);
      if (!this.#committed) this.#commit("");
      this.#res.end(tail + SSE_DONE);
    } else {
      const message: Record<string, unknown> = {
        role: "assistant",
        // OpenAI's answer that only calls functions has null content.
        content: output.content === "" && output.toolCalls.length > 0 ? null : output.content,
      };
      if (output.reasoning !== "") message["reasoning_content"] = output.reasoning;
      if (output.toolCalls.length > 0) {
        message["tool_calls"] = output.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
      }
      message["refusal"] = null;
      const body = JSON.stringify({
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message,
            logprobs: this.#logprobs === undefined ? null : { content: this.#logprobs, refusal: null },
            finish_reason: finishReason,
          },
        ],
        usage: usageObject(result.usage),
        system_fingerprint: this.#deps.systemFingerprint,
      });
      this.#res
        .writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "x-request-id": this.#requestId,
          "x-smollm-worker-id": result.workerId,
          "x-smollm-cached-tokens": String(result.usage.cachedTokens),
        })
        .end(body);
    }
    return result;
  }

  onStarted(workerId: string): void {
    this.#workerId = workerId;
  }

  onDelta(text: string, tokens: number, logprobs?: readonly TokenLogprobs[]): Promise<void> | undefined {
    const now = performance.now();
    if (this.#firstTokenAt === 0) {
      this.#firstTokenAt = now;
      this.#deps.metrics.timeToFirstToken.observe({ stream: String(this.#stream) }, (now - this.#startedAt) / 1000);
    } else {
      this.#deps.metrics.interTokenLatency.observe((now - this.#lastTokenAt) / 1000 / (tokens > 0 ? tokens : 1));
    }
    this.#lastTokenAt = now;
    // Throws (a rejection that ends the generation) for a function call the request does not allow.
    const deltas = (this.#output as CompletionOutput).push(text);
    if (logprobs !== undefined && logprobs.length > 0) this.#logprobs?.push(...toLogprobContent(logprobs));
    const frames = this.#frames;
    if (frames === undefined) return undefined;
    const chunk = this.#framesOf(frames, deltas);
    if (chunk === "") return undefined;
    if (!this.#committed) return this.#commit(chunk);
    return writeChunk(this.#res, chunk, this.#deps.config.writeStallTimeoutMs);
  }

  /** The SSE frames of `deltas`; log-probabilities not sent yet go with the first. */
  #framesOf(frames: SseFrames, deltas: readonly OutputDelta[]): string {
    let chunk = "";
    for (const d of deltas) {
      const logprobs = this.#takeLogprobs();
      if (d.kind === "content" && logprobs === undefined) {
        chunk += frames.content(d.text);
      } else if (d.kind === "content") {
        chunk += frames.delta({ content: d.text }, logprobs);
      } else if (d.kind === "reasoning") {
        chunk += frames.delta({ reasoning_content: d.text }, logprobs);
      } else {
        const call: Record<string, unknown> = { index: d.index };
        if (d.id !== undefined) {
          call["id"] = d.id;
          call["type"] = "function";
          call["function"] = { name: d.name, arguments: d.arguments };
        } else {
          call["function"] = { arguments: d.arguments };
        }
        chunk += frames.delta({ tool_calls: [call] }, logprobs);
      }
    }
    return chunk;
  }

  /** Stream mode: the log-probabilities not sent yet (undefined when there are none). */
  #takeLogprobs(): LogprobContent[] | undefined {
    if (this.#frames === undefined || this.#logprobs === undefined || this.#logprobs.length === 0) return undefined;
    const taken = this.#logprobs;
    this.#logprobs = [];
    return taken;
  }

  /**
   * Sends the stream's headers, once the worker is known (so
   * `x-smollm-worker-id` is right) and there is text to send (so a worker that
   * fails before its first token can still be replaced), with the role frame.
   */
  #commit(firstFrames: string): Promise<void> | undefined {
    this.#committed = true;
    this.#res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-request-id": this.#requestId,
      "x-smollm-worker-id": this.#workerId,
    });
    return writeChunk(this.#res, (this.#frames as SseFrames).role + firstFrames, this.#deps.config.writeStallTimeoutMs);
  }

  #fail(failure: HttpError): void {
    const res = this.#res;
    if (failure.error.code === "cancelled") {
      // The client is gone, or stopped reading: nobody to tell.
      this.#abort.abort(failure.error);
      if (!res.destroyed) res.destroy();
      return;
    }
    if (this.#committed) {
      // Headers are out: tell the client in-band, keeping the text it already has.
      res.end(sseErrorFrame(failure.object));
      return;
    }
    const body = errorBody(failure.object);
    const headers: OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "x-request-id": this.#requestId,
    };
    if (failure.retryAfterS !== undefined) headers["retry-after"] = String(failure.retryAfterS);
    if (failure.status === 413) {
      // A body we refused to read must not be read as the next request: the
      // connection closes. But not at once ("lingering close"): closing a
      // socket with unread data resets it, and a client still sending would
      // get EPIPE / ECONNRESET instead of this answer (measured: 9 times in 30
      // for a 5 MiB body on loopback). The answer goes out now, complete (it
      // has a content-length); what the client still sends is read and
      // dropped, for at most 2 s; then the connection closes.
      headers["connection"] = "close";
      res.writeHead(failure.status, headers).write(body);
      const req = this.#req;
      const close = (): void => {
        clearTimeout(timer);
        if (!res.writableEnded) res.end();
      };
      const timer = setTimeout(close, 2_000);
      req.once("end", close);
      req.once("close", close);
      if (req.complete || req.destroyed) close();
      else req.resume();
      return;
    }
    res.writeHead(failure.status, headers).end(body);
  }

  #record(result: GenerationResult | undefined, failure: HttpError | undefined): void {
    const { metrics, logger } = this.#deps;
    const stream = String(this.#stream);
    const durationMs = performance.now() - this.#startedAt;
    const status = failure?.status ?? 200;
    metrics.requests.inc({ status: String(status), stream });
    metrics.requestDuration.observe({ stream }, durationMs / 1000);
    const fields = {
      request_id: this.#requestId,
      worker_id: this.#workerId || undefined,
      status,
      stream: this.#stream,
      duration_ms: Math.round(durationMs),
      ttft_ms: this.#firstTokenAt === 0 ? undefined : Math.round(this.#firstTokenAt - this.#startedAt),
    };
    if (result !== undefined) {
      const { usage } = result;
      metrics.promptTokens.inc(usage.promptTokens);
      metrics.completionTokens.inc(usage.completionTokens);
      metrics.cachedPromptTokens.inc(usage.cachedTokens);
      logger.info(
        {
          ...fields,
          prompt_tokens: usage.promptTokens,
          completion_tokens: usage.completionTokens,
          cached_tokens: usage.cachedTokens,
          finish_reason: result.finishReason,
          retries: result.retries,
        },
        "chat completion",
      );
      return;
    }
    if (failure === undefined) return;
    const { error } = failure;
    metrics.errors.inc({ code: error.code });
    const line = { ...fields, code: error.code, err: error, streamed: this.#committed };
    if (status >= 500) logger.error(line, "chat completion failed");
    else logger.info(line, "chat completion failed");
  }
}
