import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import {
  ClusterError,
  ContextLengthError,
  OverloadedError,
  UnavailableError,
  createLogger,
} from "@smollm/common";
import {
  FinishReason,
  SchedulerService,
  WorkerService,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type CallContext,
  type GenerateRequest,
  type GenerateResponse,
  type GrpcServer,
  type RouteRequest,
} from "@smollm/proto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, publicApi, type GenerateResponseSchema } from "@smollm/proto";
import { loadConfig, type GatewayConfig } from "./config.ts";
import { startGateway, type Gateway } from "./gateway.ts";

// Fakes of the scheduler and workers: this file tests the gateway, not them.

type Event = MessageInitShape<typeof GenerateResponseSchema>;
type Behavior = (request: GenerateRequest, context: CallContext, worker: FakeWorker) => AsyncIterable<Event>;

interface FakeWorker {
  id: string;
  port: number;
  server: GrpcServer;
  behavior: Behavior;
  calls: GenerateRequest[];
  cancelled: number;
}

const started = (request: GenerateRequest, worker: FakeWorker, cachedTokens = 3): Event => ({
  event: { case: "started", value: { workerId: worker.id, slot: 0, cachedTokens, promptTokens: request.promptTokens.length } },
});
const delta = (text: string, tokens = 1): Event => ({ event: { case: "delta", value: { text, tokens } } });
const finished = (request: GenerateRequest, completionTokens: number, reason = FinishReason.STOP, cachedTokens = 3): Event => ({
  event: {
    case: "finished",
    value: { reason, usage: { promptTokens: request.promptTokens.length, completionTokens, cachedTokens } },
  },
});

const hello: Behavior = async function* (request, _context, worker) {
  yield started(request, worker);
  yield delta("Hello");
  yield delta("", 1); // a token whose bytes end mid-character: no text yet
  yield delta(", wor");
  yield delta("ld!");
  yield finished(request, 4);
};

/** Streams "tok " every `intervalMs` until cancelled, counting the cancellation. */
const endless =
  (intervalMs: number, text = "tok "): Behavior =>
  async function* (request, context, worker) {
    yield started(request, worker);
    try {
      while (!context.signal.aborted) {
        yield delta(text);
        await sleep(intervalMs);
      }
    } finally {
      if (context.signal.aborted) worker.cancelled++;
    }
  };

const failing = (error: () => Error): Behavior =>
  async function* () {
    throw error();
  };

async function startWorker(id: string): Promise<FakeWorker> {
  const worker = { id, behavior: hello, calls: [], cancelled: 0 } as unknown as FakeWorker;
  worker.server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        generate: (request, context) => {
          worker.calls.push(request);
          return worker.behavior(request, context, worker);
        },
        getStatus: async () => ({ workerId: id }),
      }),
    );
  });
  worker.port = worker.server.port;
  return worker;
}

interface FakeScheduler {
  server: GrpcServer;
  routes: RouteRequest[];
  order: FakeWorker[];
  contextSize: number;
}

async function startScheduler(order: FakeWorker[]): Promise<FakeScheduler> {
  const scheduler = { routes: [], order, contextSize: 4096 } as unknown as FakeScheduler;
  scheduler.server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(SchedulerService),
      serviceImplementation(SchedulerService, {
        route: async (request) => {
          scheduler.routes.push(request);
          // A fake tokenizer: one token per 4 characters.
          const promptTokens = Array.from({ length: Math.ceil(request.prompt.length / 4) }, (_, i) => i % 1000);
          if (promptTokens.length + request.maxTokens > scheduler.contextSize) {
            throw new ContextLengthError(`needs ${promptTokens.length + request.maxTokens} tokens, context is ${scheduler.contextSize}`, { param: "messages" });
          }
          const worker = scheduler.order.find((w) => !request.excludeWorkers.includes(w.id));
          if (worker === undefined) throw new OverloadedError("all workers are busy", { retryAfterMs: 2000 });
          return {
            workerId: worker.id,
            workerAddress: `127.0.0.1:${worker.port}`,
            promptTokens,
            contextSize: scheduler.contextSize,
            outcome: "load",
          };
        },
      }),
    );
  });
  return scheduler;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

describe("gateway end to end (fake scheduler and workers)", () => {
  let a: FakeWorker;
  let b: FakeWorker;
  let scheduler: FakeScheduler;
  let gateway: Gateway;
  let config: GatewayConfig;
  let base: string;
  let client: OpenAI;

  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const messages = [{ role: "user" as const, content: "Say hello" }];

  before(async () => {
    a = await startWorker("worker-a");
    b = await startWorker("worker-b");
    scheduler = await startScheduler([a, b]);
    config = {
      ...loadConfig({ argv: [], env: {} }),
      host: "127.0.0.1",
      port: 0,
      grpcPort: 0,
      schedulerAddress: `127.0.0.1:${scheduler.server.port}`,
      maxBodyBytes: 64 * 1024,
      writeStallTimeoutMs: 300,
      logLevel: "silent",
    };
    gateway = await startGateway(config, createLogger({ service: "gateway", level: "silent" }));
    base = `http://127.0.0.1:${gateway.port}`;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "x", maxRetries: 0 });
  });

  after(async () => {
    await gateway.close();
    await Promise.all([a.server.close(100), b.server.close(100), scheduler.server.close(100)]);
  });

  beforeEach(() => {
    for (const w of [a, b]) {
      w.behavior = hello;
      w.calls = [];
      w.cancelled = 0;
    }
    scheduler.routes = [];
    scheduler.order = [a, b];
    scheduler.contextSize = 4096;
  });

  test("non-streaming completion through the openai client", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "SmolLM3-3B", messages, max_tokens: 16, temperature: 0, seed: 7, stop: ["\n\n"] })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.match(data.id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.equal(data.model, "SmolLM3-3B");
    assert.equal(data.choices.length, 1);
    assert.deepEqual(data.choices[0]?.message.role, "assistant");
    assert.equal(data.choices[0]?.message.content, "Hello, world!");
    assert.equal(data.choices[0]?.finish_reason, "stop");
    const promptTokens = scheduler.routes[0] ? Math.ceil(scheduler.routes[0].prompt.length / 4) : -1;
    assert.deepEqual(data.usage, {
      prompt_tokens: promptTokens,
      completion_tokens: 4,
      total_tokens: promptTokens + 4,
      prompt_tokens_details: { cached_tokens: 3 },
    });
    assert.equal(response.headers.get("x-smollm-worker-id"), "worker-a");
    assert.equal(response.headers.get("x-smollm-cached-tokens"), "3");
    assert.ok(response.headers.get("x-request-id"));

    // What went over the wire: the rendered prompt, then the tokens and sampling to the worker.
    const route = scheduler.routes[0];
    assert.ok(route?.prompt.startsWith("<|im_start|>system\n## Metadata\n\n"));
    assert.ok(route?.prompt.endsWith("<|im_start|>user\nSay hello<|im_end|>\n<|im_start|>assistant\n"));
    assert.equal(route?.maxTokens, 16);
    const call = a.calls[0];
    assert.equal(call?.maxTokens, 16);
    assert.equal(call?.promptTokens.length, promptTokens);
    assert.equal(call?.sampling?.temperature, 0);
    assert.equal(call?.sampling?.seed, 7);
    assert.deepEqual(call?.stop, ["\n\n"]);
    assert.equal(call?.requestId, route?.requestId);
  });

  test("defaults: sampling from config, max_tokens bounded by the worker's context, no_think via chat_template_kwargs", async () => {
    scheduler.contextSize = 300;
    const res = await post({ model: "SmolLM3-3B", messages, chat_template_kwargs: { enable_thinking: false } });
    assert.equal(res.status, 200, res.text);
    const route = scheduler.routes[0];
    assert.equal(route?.maxTokens, 0);
    assert.ok(route?.prompt.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n"));
    const call = a.calls[0];
    assert.equal(call?.maxTokens, Math.min(config.defaultMaxTokens, 300 - (call?.promptTokens.length ?? 0)));
    assert.ok(Math.abs((call?.sampling?.temperature ?? 0) - 0.6) < 1e-6);
    assert.ok(Math.abs((call?.sampling?.topP ?? 0) - 0.95) < 1e-6);
    assert.equal(call?.sampling?.seed, undefined);
  });

  test("streaming with include_usage through the openai client", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: "SmolLM3-3B", messages, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("x-smollm-worker-id"), "worker-a");
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.deepEqual(chunks[0]?.choices[0]?.delta, { role: "assistant", content: "" });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, "Hello, world!");
    const finish = chunks.at(-2);
    assert.equal(finish?.choices[0]?.finish_reason, "stop");
    assert.deepEqual(finish?.choices[0]?.delta, {});
    const usage = chunks.at(-1);
    assert.deepEqual(usage?.choices, []);
    assert.equal(usage?.usage?.completion_tokens, 4);
    assert.equal(usage?.usage?.prompt_tokens_details?.cached_tokens, 3);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    assert.ok(chunks.every((c) => c.id === chunks[0]?.id && c.object === "chat.completion.chunk"));
  });

  test("SSE framing on the wire", async () => {
    const res = await post({ model: "SmolLM3-3B", messages, stream: true }, { "x-request-id": "my-req.42" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.equal(res.headers.get("connection"), "keep-alive");
    assert.equal(res.headers.get("x-request-id"), "my-req.42");
    assert.equal(res.headers.get("x-smollm-worker-id"), "worker-a");
    assert.ok(res.text.endsWith("\n\ndata: [DONE]\n\n"));
    const events = res.text.split("\n\n").filter((e) => e !== "");
    assert.ok(events.every((e) => e.startsWith("data: ") && !e.includes("\n")));
    assert.equal(events.length, 1 + 3 + 1 + 1); // role, 3 texts, finish, [DONE]
    const json = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
    assert.deepEqual(Object.keys(json[0] ?? {}), ["id", "object", "created", "model", "system_fingerprint", "choices"]);
    assert.deepEqual(json[0]?.["choices"], [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
    assert.deepEqual(json[1]?.["choices"], [{ index: 0, delta: { content: "Hello" }, logprobs: null, finish_reason: null }]);
    assert.deepEqual(json[4]?.["choices"], [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    assert.equal(scheduler.routes[0]?.requestId, "my-req.42");
  });

  test("finish_reason length", async () => {
    a.behavior = async function* (request, _c, worker) {
      yield started(request, worker);
      yield delta("ab", 2);
      yield finished(request, 2, FinishReason.LENGTH);
    };
    const completion = await client.chat.completions.create({ model: "SmolLM3-3B", messages, max_tokens: 2 });
    assert.equal(completion.choices[0]?.finish_reason, "length");
  });

  test("client abort cancels the worker's generation", async () => {
    a.behavior = endless(5);
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "SmolLM3-3B", messages, stream: true },
      { signal: controller.signal },
    );
    let seen = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content && ++seen === 3) controller.abort();
      }
    } catch {
      // openai 7 ends an aborted stream quietly or with an abort error; either is fine here.
    }
    assert.equal(seen, 3);
    await waitFor(() => a.cancelled === 1, "the worker to see the cancellation");
  });

  test("non-streaming client disconnect cancels the worker too", async () => {
    a.behavior = endless(5);
    const controller = new AbortController();
    const pending = fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "SmolLM3-3B", messages }),
      signal: controller.signal,
    });
    await waitFor(() => a.calls.length === 1, "the worker call");
    await sleep(30);
    controller.abort();
    await assert.rejects(pending);
    await waitFor(() => a.cancelled === 1, "the worker to see the cancellation");
  });

  test("retry on another worker when the first is UNAVAILABLE before the first token", async () => {
    a.behavior = failing(() => new UnavailableError("worker draining"));
    const { data, response } = await client.chat.completions
      .create({ model: "SmolLM3-3B", messages, stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of data) text += chunk.choices[0]?.delta.content ?? "";
    assert.equal(text, "Hello, world!");
    assert.equal(response.headers.get("x-smollm-worker-id"), "worker-b");
    assert.equal(scheduler.routes.length, 2);
    assert.deepEqual(scheduler.routes[1]?.excludeWorkers, ["worker-a"]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /smollm_gateway_retries_total\{code="unavailable",service="gateway"\} 1/);
  });

  test("retry also after Started but before any text", async () => {
    a.behavior = async function* (request, _c, worker) {
      yield started(request, worker);
      yield delta("", 1);
      throw new OverloadedError("slot lost");
    };
    const completion = await client.chat.completions.create({ model: "SmolLM3-3B", messages });
    assert.equal(completion.choices[0]?.message.content, "Hello, world!");
    assert.equal(b.calls.length, 1);
  });

  test("no retry for other errors; retries exhausted → the scheduler's 429 with Retry-After", async () => {
    a.behavior = failing(() => new ClusterError("internal", "boom"));
    const internal = await post({ model: "SmolLM3-3B", messages });
    assert.equal(internal.status, 500);
    assert.equal(b.calls.length, 0);
    assert.deepEqual(JSON.parse(internal.text), {
      error: {
        message: "The server had an error while processing your request. Sorry about that!",
        type: "server_error",
        param: null,
        code: null,
      },
    });

    a.behavior = failing(() => new OverloadedError("full"));
    b.behavior = failing(() => new OverloadedError("full"));
    const busy = await post({ model: "SmolLM3-3B", messages, stream: true });
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get("retry-after"), "2");
    assert.equal(JSON.parse(busy.text).error.code, "resource_exhausted");
    assert.deepEqual(scheduler.routes.at(-1)?.excludeWorkers, ["worker-a", "worker-b"]);
  });

  test("failure after streaming began: partial text kept, then an SSE error event", async () => {
    a.behavior = async function* (request, _c, worker) {
      yield started(request, worker);
      yield delta("partial ");
      yield delta("text");
      throw new UnavailableError("worker crashed");
    };
    const raw = await post({ model: "SmolLM3-3B", messages, stream: true });
    assert.equal(raw.status, 200);
    assert.ok(raw.text.includes('"delta":{"content":"partial "}'));
    assert.ok(
      raw.text.endsWith('data: {"error":{"message":"worker crashed","type":"server_error","param":null,"code":"unavailable"}}\n\n'),
      raw.text,
    );
    assert.ok(!raw.text.includes("[DONE]"));
    assert.equal(b.calls.length, 0);

    const stream = await client.chat.completions.create({ model: "SmolLM3-3B", messages, stream: true });
    let text = "";
    await assert.rejects(
      async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      },
      (error: unknown) => error instanceof OpenAI.APIError && /worker crashed/.test(error.message),
    );
    assert.equal(text, "partial text");
  });

  test("bad requests → OpenAI error bodies", async () => {
    const cases: [unknown, number, Record<string, unknown>][] = [
      [{ model: "SmolLM3-3B", messages: [] }, 400, { param: "messages", code: "empty_array" }],
      [{ model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }, { role: "bot", content: "y" }] }, 400, { param: "messages[1].role", code: "invalid_value" }],
      [{ model: "SmolLM3-3B", messages, temperature: "hot" }, 400, { param: "temperature", code: "invalid_type" }],
      [{ model: "SmolLM3-3B", messages, n: 3 }, 400, { param: "n", code: "unsupported_value" }],
      [{ model: "gpt-4o", messages }, 404, { param: null, code: "model_not_found" }],
      ["{not json", 400, { param: null, code: null }],
    ];
    for (const [body, status, expected] of cases) {
      const res = await post(body);
      assert.equal(res.status, status, res.text);
      assert.equal(res.headers.get("content-type"), "application/json");
      const parsed = JSON.parse(res.text) as { error: Record<string, unknown> };
      assert.deepEqual(Object.keys(parsed.error), ["message", "type", "param", "code"]);
      assert.equal(parsed.error["type"], "invalid_request_error");
      for (const [k, v] of Object.entries(expected)) assert.equal(parsed.error[k], v, `${k} of ${res.text}`);
    }
    assert.equal(a.calls.length + scheduler.routes.length, 0);

    await assert.rejects(
      client.chat.completions.create({ model: "SmolLM3-3B", messages: [] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "messages" && e.code === "empty_array",
    );
    await assert.rejects(
      client.chat.completions.create({ model: "nope", messages }),
      (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
    );
  });

  test("body too large → 413; context too long → 400 context_length_exceeded", async () => {
    const big = await post({ model: "SmolLM3-3B", messages: [{ role: "user", content: "x".repeat(100 * 1024) }] });
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.text).error.code, "request_too_large");

    const long = await post({ model: "SmolLM3-3B", messages, max_tokens: 100_000 });
    assert.equal(long.status, 400);
    assert.deepEqual(JSON.parse(long.text).error, {
      message: long.text ? JSON.parse(long.text).error.message : "",
      type: "invalid_request_error",
      param: "messages",
      code: "context_length_exceeded",
    });
  });

  test("models, health, readiness, metrics, unknown routes", async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => [m.id, m.object, m.owned_by]),
      [["SmolLM3-3B", "model", "smollm-cluster"]],
    );
    assert.equal((await client.models.retrieve("SmolLM3-3B")).id, "SmolLM3-3B");
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const notFound = await fetch(`${base}/v1/embeddings`, { method: "POST", body: "{}" });
    assert.equal(notFound.status, 404);
    assert.equal(((await notFound.json()) as { error: { message: string } }).error.message, "Invalid URL (POST /v1/embeddings)");
    assert.equal((await fetch(`${base}/v1/chat/completions`)).status, 405);

    await client.chat.completions.create({ model: "SmolLM3-3B", messages });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      "smollm_gateway_requests_total",
      "smollm_gateway_in_flight_requests",
      "smollm_gateway_time_to_first_token_seconds_bucket",
      "smollm_gateway_inter_token_latency_seconds_bucket",
      "smollm_gateway_request_duration_seconds_bucket",
      "smollm_gateway_prompt_tokens_total",
      "smollm_gateway_completion_tokens_total",
      "smollm_gateway_cached_prompt_tokens_total",
      "smollm_gateway_errors_total",
      "smollm_gateway_process_cpu_seconds_total",
    ]) {
      assert.ok(metrics.includes(name), name);
    }
    assert.match(metrics, /smollm_gateway_requests_total\{status="200",stream="false",service="gateway"\} \d+/);
    assert.match(metrics, /smollm_gateway_errors_total\{code="invalid_argument",service="gateway"\} \d+/);
  });

  test("a client that stops reading is cancelled after the stall timeout", async () => {
    a.behavior = endless(0, "x".repeat(64 * 1024));
    const body = JSON.stringify({ model: "SmolLM3-3B", messages, stream: true });
    const req = httpRequest(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    });
    const paused = new Promise<void>((resolve) => {
      req.on("response", (res) => {
        res.pause(); // never read: the socket's buffers fill, then the gateway's writes stall
        resolve();
      });
    });
    req.on("error", () => {});
    req.end(body);
    await paused;
    await waitFor(() => a.cancelled === 1, "the stalled stream to be cancelled", 10_000);
    req.destroy();
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /smollm_gateway_requests_total\{status="499",stream="true",service="gateway"\} [1-9]/);
  });

  test("deadline → 504", async () => {
    a.behavior = endless(20);
    const fast = await startGateway({ ...config, requestTimeoutMs: 150 }, createLogger({ service: "gateway", level: "silent" }));
    try {
      const res = await fetch(`http://127.0.0.1:${fast.port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "SmolLM3-3B", messages }),
      });
      assert.equal(res.status, 504);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "deadline_exceeded");
    } finally {
      await fast.close();
    }
  });

  test("drain: readyz 503, new requests 503, in-flight streams finish", async () => {
    a.behavior = async function* (request, _c, worker) {
      yield started(request, worker);
      for (let i = 0; i < 10; i++) {
        yield delta(`${i} `);
        await sleep(20);
      }
      yield finished(request, 10);
    };
    const draining = await startGateway(config, createLogger({ service: "gateway", level: "silent" }));
    const url = `http://127.0.0.1:${draining.port}`;
    try {
      const local = new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 });
      const stream = await local.chat.completions.create({ model: "SmolLM3-3B", messages, stream: true });
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next(); // the stream is under way
      let drained = false;
      const drain = draining.drain().then(() => (drained = true));
      assert.equal((await fetch(`${url}/readyz`)).status, 503);
      const refused = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "SmolLM3-3B", messages }),
      });
      assert.equal(refused.status, 503);
      assert.equal(drained, false);
      let text = "";
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) text += r.value.choices[0]?.delta.content ?? "";
      assert.equal(text, "0 1 2 3 4 5 6 7 8 9 ");
      await drain;
      assert.equal(drained, true);
    } finally {
      await draining.close();
    }
  });

  test("public gRPC API: same results as HTTP, worker and cache in headers, clear statuses, cancellation", async () => {
    const grpcClient = createClient(publicApi.ChatService, `127.0.0.1:${gateway.grpcPort}`);
    try {
      const params = { model: "SmolLM3-3B", messages: [{ role: "user", content: "Say hello" }] };
      const headers: Record<string, string>[] = [];
      const whole = await grpcClient.createChatCompletion({ params }, { onHeaders: (h) => headers.push(h) });
      assert.equal(whole.message?.content, "Hello, world!");
      assert.equal(whole.finishReason, "stop");
      assert.equal(whole.workerId, "worker-a");
      assert.equal(whole.usage?.cachedTokens, 3);
      assert.equal(headers[0]?.["x-smollm-worker-id"], "worker-a");
      assert.equal(headers[0]?.["x-smollm-cached-tokens"], "3");

      let text = "";
      let last: publicApi.StreamChatCompletionResponse | undefined;
      const streamHeaders: Record<string, string>[] = [];
      for await (const chunk of grpcClient.streamChatCompletion({ params }, { onHeaders: (h) => streamHeaders.push(h) })) {
        text += chunk.content;
        last = chunk;
      }
      assert.equal(text, "Hello, world!");
      assert.equal(last?.finishReason, "stop");
      assert.equal(last?.usage?.completionTokens, 4);
      assert.equal(streamHeaders[0]?.["x-smollm-worker-id"], "worker-a");

      const http = await client.chat.completions.create({ model: "SmolLM3-3B", messages });
      assert.equal(http.choices[0]?.message.content, whole.message?.content);

      await assert.rejects(grpcClient.createChatCompletion({ params: { model: "SmolLM3-3B", messages: [] } }), (e: unknown) =>
        e instanceof ClusterError && e.code === "invalid_argument" && /messages/.test(e.message),
      );
      await assert.rejects(grpcClient.createChatCompletion({ params: { ...params, model: "gpt-4o" } }), (e: unknown) =>
        e instanceof ClusterError && e.code === "not_found",
      );
      await assert.rejects(grpcClient.createChatCompletion({ params: { ...params, temperature: 7 } }), (e: unknown) =>
        e instanceof ClusterError && e.code === "invalid_argument" && /temperature/.test(e.message),
      );

      a.behavior = endless(5);
      const controller = new AbortController();
      let n = 0;
      await assert.rejects(async () => {
        for await (const _ of grpcClient.streamChatCompletion({ params }, { signal: controller.signal })) {
          void _;
          if (++n === 3) controller.abort();
        }
      }, (e: unknown) => e instanceof ClusterError && e.code === "cancelled");
      await waitFor(() => a.cancelled === 1, "the worker to see the cancellation");

      const models = await grpcClient.listModels({});
      assert.deepEqual(models.models.map((m) => m.id), ["SmolLM3-3B"]);
    } finally {
      grpcClient.close();
    }
  });
});
