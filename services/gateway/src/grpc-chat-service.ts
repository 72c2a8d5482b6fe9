import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { CancelledError, InvalidRequestError, UnavailableError, toClusterError } from "@smollm/common";
import { publicApi, type CallContext, type TokenLogprobs } from "@smollm/proto";
import { modelNotFound } from "./api-error.ts";
import { parseChatCompletionRequest, type ChatCompletionRequest } from "./chat-request.ts";
import { CompletionOutput, type OutputDelta } from "./completion-output.ts";
import type { GatewayConfig } from "./config.ts";
import type { GenerationResult, GenerationSink, Generator } from "./generation.ts";
import { generationParams } from "./generation-params.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { completionId, requestIdOf } from "./request-id.ts";

type Params = publicApi.ChatCompletionParams;

/** What the public gRPC API needs from the gateway. */
export interface GrpcChatDeps {
  config: GatewayConfig;
  logger: Logger;
  metrics: GatewayMetrics;
  generator: Generator;
  models: ReadonlySet<string>;
  /** True once draining: new calls are refused with UNAVAILABLE. */
  isDraining: () => boolean;
  /** Counts calls in flight, so drain waits for gRPC streams as for HTTP ones. */
  enter: () => void;
  leave: () => void;
}

/**
 * Turns the protobuf request into the OpenAI-shaped body the HTTP API takes,
 * so both front ends share one validator and give the same results and errors.
 */
function toOpenAiBody(params: Params | undefined): Record<string, unknown> {
  if (!params) throw new InvalidRequestError("params is required", { param: "params" });
  const parseJson = (text: string, param: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw new InvalidRequestError(`${param} is not valid JSON`, { param });
    }
  };
  const body: Record<string, unknown> = {
    model: params.model,
    messages: params.messages.map((m) => {
      const msg: Record<string, unknown> = { role: m.role, content: m.content };
      if (m.name) msg["name"] = m.name;
      if (m.toolCallId) msg["tool_call_id"] = m.toolCallId;
      if (m.reasoningContent) msg["reasoning_content"] = m.reasoningContent;
      if (m.toolCalls.length > 0) {
        msg["tool_calls"] = m.toolCalls.map((c, j) => ({
          id: c.id,
          type: "function",
          function: { name: c.name, arguments: c.arguments },
          index: j,
        }));
      }
      return msg;
    }),
    stop: params.stop,
    logprobs: params.logprobs,
  };
  const optional: [string, unknown][] = [
    ["max_tokens", params.maxTokens],
    ["temperature", params.temperature],
    ["top_p", params.topP],
    ["top_k", params.topK],
    ["min_p", params.minP],
    ["seed", params.seed],
    ["presence_penalty", params.presencePenalty],
    ["frequency_penalty", params.frequencyPenalty],
    ["enable_thinking", params.enableThinking],
    ["parallel_tool_calls", params.parallelToolCalls],
  ];
  for (const [k, v] of optional) if (v !== undefined) body[k] = v;
  if (params.topLogprobs > 0) body["top_logprobs"] = params.topLogprobs;
  if (params.reasoningEffort) body["reasoning_effort"] = params.reasoningEffort;
  if (params.tools.length > 0) {
    body["tools"] = params.tools.map((t, i) => ({
      type: "function",
      function: {
        name: t.name,
        description: t.description,
        parameters: t.parameters ? parseJson(t.parameters, `tools[${i}].parameters`) : {},
      },
    }));
  }
  if (params.toolChoice) {
    body["tool_choice"] = ["auto", "none", "required"].includes(params.toolChoice)
      ? params.toolChoice
      : { type: "function", function: { name: params.toolChoice } };
  }
  if (params.jsonSchema) {
    body["response_format"] =
      params.jsonSchema === "{}"
        ? { type: "json_object" }
        : { type: "json_schema", json_schema: { name: "response", schema: parseJson(params.jsonSchema, "json_schema") } };
  }
  return body;
}

/** One item handed from the generation to the gRPC stream. */
type Item =
  | { deltas: OutputDelta[]; logprobs: readonly TokenLogprobs[] | undefined }
  | { done: GenerationResult }
  | { error: unknown };

type PublicTokenLogprob = MessageInitShape<typeof publicApi.TokenLogprobSchema>;

/** The worker's per-token log-probabilities as the public API's. */
function publicLogprobs(entries: readonly TokenLogprobs[]): PublicTokenLogprob[] {
  return entries.map((e) => ({
    token: e.sampled?.token ?? "",
    logprob: e.sampled?.logprob ?? 0,
    bytes: e.sampled?.bytes ?? new Uint8Array(),
    topLogprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  }));
}

type StreamMessage = MessageInitShape<typeof publicApi.StreamChatCompletionResponseSchema>;

/** One stream message per delta, so their order is kept; log-probabilities ride on the first. */
function streamMessages(id: string, workerId: string, deltas: readonly OutputDelta[], logprobs: PublicTokenLogprob[]): StreamMessage[] {
  const messages: StreamMessage[] = deltas.map((d) => {
    if (d.kind === "content") return { id, content: d.text, workerId };
    if (d.kind === "reasoning") return { id, reasoningContent: d.text, workerId };
    return { id, toolCalls: [{ index: d.index, id: d.id ?? "", name: d.name ?? "", arguments: d.arguments }], workerId };
  });
  const first = messages[0];
  if (logprobs.length > 0) {
    if (first === undefined) messages.push({ id, logprobs, workerId });
    else first.logprobs = logprobs;
  }
  return messages;
}

/**
 * A bounded hand-off between the generation (producer) and the gRPC stream
 * (consumer): `push` resolves only once there is room, so a client that
 * reads slowly slows the worker down instead of growing memory here.
 */
class DeltaChannel {
  readonly #items: Item[] = [];
  readonly #limit: number;
  readonly #stallMs: number;
  #wakeConsumer: (() => void) | undefined;
  #wakeProducer: (() => void) | undefined;
  #closed = false;

  /** @param stallMs how long a text push may wait for room before the generation is given up. */
  constructor(limit = 32, stallMs = 30_000) {
    this.#limit = limit;
    this.#stallMs = stallMs;
  }

  push(item: Item): Promise<void> | undefined {
    if (this.#closed) return undefined;
    this.#items.push(item);
    this.#wakeConsumer?.();
    // Only text waits for room: the last item (done or error) ends the producer.
    if (this.#items.length < this.#limit || !("deltas" in item)) return undefined;
    return new Promise((resolve, reject) => {
      // A client that stopped reading must not keep a worker generating for
      // nobody: as the HTTP stream's write-stall timeout does, give up on the
      // generation (the rejection cancels it and frees the worker's slot).
      const timer = setTimeout(() => {
        this.#wakeProducer = undefined;
        reject(new CancelledError(`client stopped reading for ${this.#stallMs} ms`));
      }, this.#stallMs);
      this.#wakeProducer = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The consumer is gone: release a waiting producer and drop what comes next. */
  close(): void {
    this.#closed = true;
    this.#items.length = 0;
    this.#wakeProducer?.();
    this.#wakeProducer = undefined;
  }

  async *drain(): AsyncGenerator<Item> {
    for (;;) {
      const item = this.#items.shift();
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          this.#wakeConsumer = resolve;
        });
        this.#wakeConsumer = undefined;
        continue;
      }
      if (this.#items.length < this.#limit) {
        this.#wakeProducer?.();
        this.#wakeProducer = undefined;
      }
      yield item;
      if (!("deltas" in item)) return;
    }
  }
}

const usageOf = (r: GenerationResult) => ({
  promptTokens: r.usage.promptTokens,
  completionTokens: r.usage.completionTokens,
  totalTokens: r.usage.promptTokens + r.usage.completionTokens,
  cachedTokens: r.usage.cachedTokens,
});

/** Handlers of `smollm.v1.ChatService`, sharing validation and generation with the HTTP API. */
export function chatServiceHandlers(deps: GrpcChatDeps) {
  const { config, generator, metrics, logger } = deps;

  const prepare = (params: Params | undefined, context: CallContext): { request: ChatCompletionRequest; requestId: string } => {
    if (deps.isDraining()) throw new UnavailableError("The server is shutting down; retry on another instance.", { retryAfterMs: 1_000 });
    const request = parseChatCompletionRequest(toOpenAiBody(params));
    if (!deps.models.has(request.model)) throw modelNotFound(request.model);
    const header = context.metadata.get("x-request-id")[0];
    return { request, requestId: requestIdOf(typeof header === "string" ? header : undefined) };
  };
  const deadlineOf = (context: CallContext): number => Math.min(context.deadline, Date.now() + config.requestTimeoutMs);
  const count = (method: string, error?: unknown): void => {
    const code = error === undefined ? "ok" : toClusterError(error).code;
    metrics.grpcRequests.inc({ method, code });
    if (error !== undefined) logger.info({ err: error, method, code }, "grpc chat call failed");
  };

  return {
    createChatCompletion: async (
      req: publicApi.CreateChatCompletionRequest,
      context: CallContext,
    ): Promise<MessageInitShape<typeof publicApi.CreateChatCompletionResponseSchema>> => {
      deps.enter();
      try {
        const { request, requestId } = prepare(req.params, context);
        const output = new CompletionOutput(request);
        const logprobs: PublicTokenLogprob[] = [];
        const sink: GenerationSink = {
          onStarted: () => undefined,
          // Throws (ending the generation) for a function call the request does not allow.
          onDelta: (text, _tokens, lp) => {
            output.push(text);
            if (lp !== undefined) logprobs.push(...publicLogprobs(lp));
            return undefined;
          },
        };
        const result = await generator.run(generationParams(request, config, requestId), sink, {
          signal: context.signal,
          deadline: deadlineOf(context),
        });
        const { finishReason } = output.finish(result.finishReason);
        context.sendHeaders({
          "x-request-id": requestId,
          "x-smollm-worker-id": result.workerId,
          "x-smollm-cached-tokens": String(result.usage.cachedTokens),
        });
        count("CreateChatCompletion");
        return {
          id: completionId(),
          model: config.modelId,
          message: {
            role: "assistant",
            content: output.content,
            reasoningContent: output.reasoning,
            toolCalls: output.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments })),
          },
          finishReason,
          usage: usageOf(result),
          workerId: result.workerId,
          logprobs,
        };
      } catch (error: unknown) {
        count("CreateChatCompletion", error);
        throw error;
      } finally {
        deps.leave();
      }
    },

    streamChatCompletion: async function* (
      req: publicApi.StreamChatCompletionRequest,
      context: CallContext,
    ): AsyncGenerator<MessageInitShape<typeof publicApi.StreamChatCompletionResponseSchema>> {
      let failed: unknown;
      let channel: DeltaChannel | undefined;
      deps.enter();
      try {
        const { request, requestId } = prepare(req.params, context);
        const id = completionId();
        const ch = new DeltaChannel(32, config.writeStallTimeoutMs);
        channel = ch;
        let workerId = "";
        const output = new CompletionOutput(request);
        const sink: GenerationSink = {
          onStarted: (w) => {
            workerId = w;
          },
          // Throws (ending the generation) for a function call the request does not allow.
          onDelta: (text, _tokens, logprobs) => ch.push({ deltas: output.push(text), logprobs }),
        };
        generator
          .run(generationParams(request, config, requestId), sink, { signal: context.signal, deadline: deadlineOf(context) })
          .then(
            (done) => void ch.push({ done }),
            (error: unknown) => void ch.push({ error }),
          );
        let headersSent = false;
        for await (const item of ch.drain()) {
          if (!headersSent && !("error" in item)) {
            // Like the HTTP stream: headers go with the first text, when a retry can no longer change the worker.
            headersSent = true;
            const w = "done" in item ? item.done.workerId : workerId;
            context.sendHeaders({ "x-request-id": requestId, "x-smollm-worker-id": w });
          }
          if ("deltas" in item) {
            yield* streamMessages(id, workerId, item.deltas, item.logprobs === undefined ? [] : publicLogprobs(item.logprobs));
          } else if ("done" in item) {
            const { deltas, finishReason } = output.finish(item.done.finishReason);
            yield* streamMessages(id, item.done.workerId, deltas, []);
            yield { id, finishReason, usage: usageOf(item.done), workerId: item.done.workerId };
          } else {
            throw item.error;
          }
        }
      } catch (error: unknown) {
        failed = error;
        throw error;
      } finally {
        channel?.close();
        deps.leave();
        count("StreamChatCompletion", failed);
      }
    },

    listModels: async (): Promise<MessageInitShape<typeof publicApi.ListModelsResponseSchema>> => ({
      models: [...deps.models].map((id) => ({ id, ownedBy: "smollm-cluster" })),
    }),
  };
}
