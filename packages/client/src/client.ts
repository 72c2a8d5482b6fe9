import { randomUUID } from "node:crypto";
import { checkServerIdentity } from "node:tls";
import {
  Client,
  Metadata,
  credentials as grpcCredentials,
  status,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
} from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as api from "@smollm/proto/public";
import { CancelledError, UnavailableError, toSmolLMError, type SmolLMError } from "./errors.ts";
import { DEFAULT_RETRY, backoffMs, sleep, type RetryOptions } from "./retry.ts";

/** What to generate: `model`, `messages` and sampling, as in `proto/smollm/v1/chat.proto` (camelCase). */
export type ChatCompletionParams = MessageInitShape<typeof api.ChatCompletionParamsSchema>;
/** One streamed message: new `content` / `reasoningContent` / `toolCalls`; the last one has `finishReason` and `usage`. */
export type ChatCompletionDelta = api.StreamChatCompletionResponse;
/** A whole completion (`createChatCompletion`). */
export type ChatCompletion = api.CreateChatCompletionResponse;
/** Token counts of a completion. */
export type Usage = api.Usage;
/** A served model. */
export type Model = api.Model;

/** TLS settings; PEM contents, not paths. */
export interface TlsOptions {
  /** CA that signed the server's certificate (a private PKI); default the system roots. */
  ca?: string | Buffer;
  /** Client certificate chain and key, for servers that require mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the server's certificate carries when it is not the dialled host. */
  serverName?: string;
}

/** Options of {@link SmolLMClient}. */
export interface SmolLMClientOptions {
  /** `host:port` of the gateway's public gRPC API (default port 50050). */
  address: string;
  /** API key, sent as `authorization: Bearer <key>` with every call. */
  apiKey?: string;
  /** `true`: TLS with the system roots; an object: a private CA, a client identity, a server name. Default plaintext. */
  tls?: boolean | TlsOptions;
  /** Default time limit of a call, all its attempts included, ms; default none. */
  timeoutMs?: number;
  /** Retries on UNAVAILABLE before the first token; `false` disables. Default {@link DEFAULT_RETRY}. */
  retry?: RetryOptions | false;
  /** Metadata sent with every call. */
  metadata?: Readonly<Record<string, string>>;
  /** grpc-js channel options (keepalive, message sizes, …). */
  channelOptions?: ChannelOptions;
}

/** Per-call options; they override the client's. */
export interface CallOptions {
  /** Aborting cancels the call (the server stops generating); the call throws {@link CancelledError}. */
  signal?: AbortSignal;
  /** Time limit of the call, all its attempts included, ms; throws `DeadlineExceededError` when passed. */
  timeoutMs?: number;
  /** Absolute deadline (Date or epoch ms); wins over `timeoutMs`. */
  deadline?: Date | number;
  /** `x-request-id` of the call, found in every service's logs; default a random UUID. */
  requestId?: string;
  /** Extra metadata of this call. */
  metadata?: Readonly<Record<string, string>>;
  /** Retry policy of this call; `false` disables retries. */
  retry?: RetryOptions | false;
}

type MethodDesc = (typeof api.ChatService.method)[keyof typeof api.ChatService.method];

function pathOf(method: MethodDesc): string {
  return `/${api.ChatService.typeName}/${method.name}`;
}

function channelCredentials(tls: SmolLMClientOptions["tls"]): ChannelCredentials {
  if (tls === undefined || tls === false) return grpcCredentials.createInsecure();
  if (tls === true) return grpcCredentials.createSsl();
  const buf = (v: string | Buffer | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));
  const serverName = tls.serverName;
  return grpcCredentials.createSsl(
    buf(tls.ca),
    buf(tls.key),
    buf(tls.cert),
    serverName === undefined ? {} : { checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert) },
  );
}

/** A resolved call: its id, deadline, metadata and retry policy. */
interface PreparedCall {
  requestId: string;
  deadline: number;
  metadata: Metadata;
  retry: Required<RetryOptions>;
  signal: AbortSignal | undefined;
}

/**
 * Client of smollm-cluster's public gRPC API (`smollm.v1.ChatService`).
 *
 * ```ts
 * const client = new SmolLMClient({ address: "gateway:50050", apiKey: process.env.SMOLLM_API_KEY });
 * for await (const delta of client.streamChatCompletion({ model: "SmolLM3-3B", messages: [{ role: "user", content: "Hi" }] })) {
 *   process.stdout.write(delta.content);
 * }
 * ```
 *
 * Every call carries an `x-request-id` (yours or a UUID) that the gateway,
 * scheduler and worker log. Calls that fail with UNAVAILABLE before any
 * token arrived are retried with backoff (a worker or gateway restarting);
 * errors are typed ({@link SmolLMError} subclasses). One client holds one
 * HTTP/2 connection; share it, and `close()` it when done.
 */
export class SmolLMClient {
  readonly #client: Client;
  readonly #options: SmolLMClientOptions;

  constructor(options: SmolLMClientOptions) {
    this.#options = options;
    this.#client = new Client(options.address, channelCredentials(options.tls), options.channelOptions ?? {});
  }

  /**
   * Streams a chat completion. Iterate the result for deltas; after the
   * loop it holds the finish reason, usage and worker. Nothing is sent until
   * iteration starts.
   */
  streamChatCompletion(params: ChatCompletionParams, options: CallOptions = {}): ChatCompletionStream {
    const call = this.#prepare(options);
    const request = create(api.StreamChatCompletionRequestSchema, { params });
    return new ChatCompletionStream(call, (attemptDeadline) =>
      this.#client.makeServerStreamRequest(
        pathOf(api.ChatService.method.streamChatCompletion),
        serializer(api.StreamChatCompletionRequestSchema),
        deserializer(api.StreamChatCompletionResponseSchema),
        request,
        call.metadata,
        attemptDeadline,
      ),
    );
  }

  /** Generates a whole chat completion (retried on UNAVAILABLE). */
  async createChatCompletion(params: ChatCompletionParams, options: CallOptions = {}): Promise<ChatCompletion> {
    const request = create(api.CreateChatCompletionRequestSchema, { params });
    return this.#unary(api.ChatService.method.createChatCompletion, api.CreateChatCompletionResponseSchema, request, options);
  }

  /** Lists the models the cluster serves. */
  async listModels(options: CallOptions = {}): Promise<Model[]> {
    const request = create(api.ListModelsRequestSchema, {});
    const response = await this.#unary(api.ChatService.method.listModels, api.ListModelsResponseSchema, request, options);
    return response.models;
  }

  /** Closes the connection; calls in flight fail. */
  close(): void {
    this.#client.close();
  }

  #prepare(options: CallOptions): PreparedCall {
    const requestId = options.requestId ?? randomUUID();
    const metadata = new Metadata();
    for (const [k, v] of Object.entries({ ...this.#options.metadata, ...options.metadata })) metadata.set(k, v);
    metadata.set("x-request-id", requestId);
    if (this.#options.apiKey !== undefined) metadata.set("authorization", `Bearer ${this.#options.apiKey}`);
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const deadline =
      options.deadline !== undefined
        ? options.deadline instanceof Date
          ? options.deadline.getTime()
          : options.deadline
        : timeoutMs !== undefined
          ? Date.now() + timeoutMs
          : Infinity;
    const policy = options.retry ?? this.#options.retry;
    const retry = policy === false ? { ...DEFAULT_RETRY, maxAttempts: 1 } : { ...DEFAULT_RETRY, ...policy };
    return { requestId, deadline, metadata, retry, signal: options.signal };
  }

  async #unary<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc,
    output: O,
    request: MessageShape<I>,
    options: CallOptions,
  ): Promise<MessageShape<O>> {
    const call = this.#prepare(options);
    const input = method.input as unknown as I;
    return withRetries(call, () => true, (attemptDeadline) =>
      new Promise<MessageShape<O>>((resolve, reject) => {
        const pending = this.#client.makeUnaryRequest(
          pathOf(method),
          serializer(input),
          deserializer(output),
          request,
          call.metadata,
          attemptDeadline,
          (error, response) => {
            call.signal?.removeEventListener("abort", onAbort);
            if (error || response === undefined) reject(error ?? new Error("empty response"));
            else resolve(response);
          },
        );
        const onAbort = (): void => pending.cancel();
        call.signal?.addEventListener("abort", onAbort, { once: true });
      }),
    );
  }
}

function serializer<D extends DescMessage>(schema: D) {
  return (message: MessageShape<D>): Buffer => Buffer.from(toBinary(schema, message));
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> => fromBinary(schema, bytes);
}

function grpcDeadline(deadline: number): GrpcCallOptions {
  return Number.isFinite(deadline) ? { deadline: new Date(deadline) } : {};
}

/**
 * Runs `attempt` until it succeeds, retrying UNAVAILABLE while `retryable()`
 * (no token delivered yet), attempts are left and the wait fits before the
 * deadline. Errors come out typed; an abort comes out as CancelledError.
 */
async function withRetries<T>(call: PreparedCall, retryable: () => boolean, attempt: (options: GrpcCallOptions) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    if (call.signal?.aborted) throw cancelled(call);
    try {
      return await attempt(grpcDeadline(call.deadline));
    } catch (thrown: unknown) {
      const error = call.signal?.aborted ? cancelled(call, thrown) : toSmolLMError(thrown, call.requestId);
      const wait = nextWait(call, error, n, retryable());
      if (wait === undefined) throw error;
      await sleepOrCancel(call, wait);
    }
  }
}

/** The wait before another attempt, or undefined when the error is final. */
function nextWait(call: PreparedCall, error: SmolLMError, attempt: number, retryable: boolean): number | undefined {
  if (!(error instanceof UnavailableError) || !retryable || attempt >= call.retry.maxAttempts) return undefined;
  const wait = backoffMs(attempt, call.retry, error.retryAfterMs);
  return Date.now() + wait < call.deadline ? wait : undefined;
}

async function sleepOrCancel(call: PreparedCall, ms: number): Promise<void> {
  try {
    await sleep(ms, call.signal);
  } catch (reason: unknown) {
    throw cancelled(call, reason);
  }
}

function cancelled(call: PreparedCall, cause?: unknown): CancelledError {
  return new CancelledError("the call was cancelled by its AbortSignal", {
    code: status.CANCELLED,
    requestId: call.requestId,
    cause: call.signal?.reason ?? cause,
  });
}

/**
 * A streamed chat completion: an async iterable of deltas, single use.
 * UNAVAILABLE before the first delta is retried (the server had not started
 * generating); after it, the error is thrown, since a restart would repeat
 * text the caller already has.
 */
export class ChatCompletionStream implements AsyncIterable<ChatCompletionDelta> {
  /** The call's `x-request-id`. */
  readonly requestId: string;
  readonly #call: PreparedCall;
  readonly #start: (options: GrpcCallOptions) => ClientReadableStream<ChatCompletionDelta>;
  #used = false;
  #attempts = 0;
  #workerId: string | undefined;
  #finishReason: string | undefined;
  #usage: Usage | undefined;

  /** @internal Created by {@link SmolLMClient.streamChatCompletion}. */
  constructor(call: PreparedCall, start: (options: GrpcCallOptions) => ClientReadableStream<ChatCompletionDelta>) {
    this.requestId = call.requestId;
    this.#call = call;
    this.#start = start;
  }

  /** Attempts made so far (1 + retries). */
  get attempts(): number {
    return this.#attempts;
  }

  /** The worker that generated the completion, once known. */
  get workerId(): string | undefined {
    return this.#workerId;
  }

  /** `stop`, `length`, `tool_calls`…, after the last delta. */
  get finishReason(): string | undefined {
    return this.#finishReason;
  }

  /** Token counts, after the last delta. */
  get usage(): Usage | undefined {
    return this.#usage;
  }

  [Symbol.asyncIterator](): AsyncIterator<ChatCompletionDelta> {
    if (this.#used) throw new Error("a ChatCompletionStream can be iterated once");
    this.#used = true;
    return this.#run();
  }

  /** Reads the whole stream into its text, reasoning, finish reason and usage. */
  async collect(): Promise<{ content: string; reasoningContent: string; finishReason: string; usage: Usage | undefined; workerId: string }> {
    let content = "";
    let reasoningContent = "";
    for await (const delta of this) {
      content += delta.content;
      reasoningContent += delta.reasoningContent;
    }
    return { content, reasoningContent, finishReason: this.#finishReason ?? "", usage: this.#usage, workerId: this.#workerId ?? "" };
  }

  async *#run(): AsyncGenerator<ChatCompletionDelta> {
    const call = this.#call;
    for (;;) {
      if (call.signal?.aborted) throw cancelled(call);
      this.#attempts++;
      const stream = this.#start(grpcDeadline(call.deadline));
      stream.on("metadata", (headers: Metadata) => {
        const worker = headers.get("x-smollm-worker-id")[0];
        if (typeof worker === "string" && worker !== "") this.#workerId = worker;
      });
      const onAbort = (): void => stream.cancel();
      call.signal?.addEventListener("abort", onAbort, { once: true });
      let received = 0;
      try {
        for await (const message of stream) {
          const delta = message as ChatCompletionDelta;
          received++;
          if (delta.workerId !== "") this.#workerId = delta.workerId;
          if (delta.finishReason !== "") this.#finishReason = delta.finishReason;
          if (delta.usage !== undefined) this.#usage = delta.usage;
          yield delta;
        }
        return;
      } catch (thrown: unknown) {
        const error = call.signal?.aborted ? cancelled(call, thrown) : toSmolLMError(thrown, call.requestId);
        const wait = nextWait(call, error, this.#attempts, received === 0);
        if (wait === undefined) throw error;
        await sleepOrCancel(call, wait);
      } finally {
        call.signal?.removeEventListener("abort", onAbort);
        // Leaving early (break, a consumer error) must stop the server's work.
        stream.cancel();
      }
    }
  }
}

