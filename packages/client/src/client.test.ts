import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ClusterError, InvalidRequestError as ServerInvalidRequest, UnavailableError as ServerUnavailable } from "@smollm/common";
import { publicApi, serviceDefinition, serviceImplementation, startGrpcServer, type CallContext, type GrpcServer } from "@smollm/proto";
import {
  AuthenticationError,
  CancelledError,
  DeadlineExceededError,
  InvalidRequestError,
  RateLimitError,
  SmolLMClient,
  UnavailableError,
} from "./index.ts";

// A fake gateway: this file tests the SDK, not the cluster (tests/src/client-sdk.test.ts does).

type Delta = MessageInitShape<typeof publicApi.StreamChatCompletionResponseSchema>;
type StreamBehavior = (attempt: number, context: CallContext) => AsyncIterable<Delta>;

const hello: StreamBehavior = async function* () {
  yield { id: "c1", content: "Hello", workerId: "w-1" };
  yield { id: "c1", content: ", world", workerId: "w-1" };
  yield { id: "c1", finishReason: "stop", usage: { promptTokens: 5, completionTokens: 2, totalTokens: 7 }, workerId: "w-1" };
};

describe("SmolLMClient against a fake ChatService", () => {
  let server: GrpcServer;
  let client: SmolLMClient;
  let behavior: StreamBehavior = hello;
  let unary: (attempt: number) => Promise<void> = async () => undefined;
  let attempts = 0;
  let seen: { requestId: unknown; authorization: unknown }[] = [];
  let cancelledByClient = 0;

  before(async () => {
    server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
      s.addService(
        serviceDefinition(publicApi.ChatService),
        serviceImplementation(publicApi.ChatService, {
          streamChatCompletion: async function* (_request, context) {
            attempts++;
            seen.push({ requestId: context.metadata.get("x-request-id")[0], authorization: context.metadata.get("authorization")[0] });
            context.signal.addEventListener("abort", () => cancelledByClient++);
            context.sendHeaders({ "x-smollm-worker-id": "w-1" });
            yield* behavior(attempts, context);
          },
          createChatCompletion: async (request) => {
            attempts++;
            await unary(attempts);
            return { id: "c2", model: request.params?.model ?? "", message: { role: "assistant", content: "Hi" }, finishReason: "stop" };
          },
          listModels: async () => ({ models: [{ id: "SmolLM3-3B", ownedBy: "smollm-cluster" }] }),
        }),
      );
    });
    client = new SmolLMClient({ address: `127.0.0.1:${server.port}`, apiKey: "sk-test", retry: { initialBackoffMs: 10, maxBackoffMs: 50 } });
  });
  after(async () => {
    client.close();
    await server.close(100);
  });
  beforeEach(() => {
    behavior = hello;
    unary = async () => undefined;
    attempts = 0;
    seen = [];
    cancelledByClient = 0;
  });

  const params = { model: "SmolLM3-3B", messages: [{ role: "user", content: "Hi" }] };

  test("streams deltas; the stream then knows its finish reason, usage and worker; key and request id are sent", async () => {
    const stream = client.streamChatCompletion(params, { requestId: "req-42" });
    let text = "";
    for await (const delta of stream) text += delta.content;
    assert.equal(text, "Hello, world");
    assert.equal(stream.finishReason, "stop");
    assert.equal(stream.usage?.totalTokens, 7);
    assert.equal(stream.workerId, "w-1");
    assert.equal(stream.attempts, 1);
    assert.equal(stream.requestId, "req-42");
    assert.deepEqual(seen, [{ requestId: "req-42", authorization: "Bearer sk-test" }]);
    assert.throws(() => stream[Symbol.asyncIterator](), /iterated once/);
  });

  test("UNAVAILABLE before the first token is retried, with the same request id", async () => {
    behavior = async function* (attempt, context) {
      if (attempt < 3) throw new ServerUnavailable("worker restarting", { retryAfterMs: 20 });
      yield* hello(attempt, context);
    };
    const stream = client.streamChatCompletion(params);
    const done = await stream.collect();
    assert.equal(done.content, "Hello, world");
    assert.equal(stream.attempts, 3);
    assert.equal(new Set(seen.map((s) => s.requestId)).size, 1);
  });

  test("UNAVAILABLE after a token is not retried (the text would repeat)", async () => {
    behavior = async function* () {
      yield { content: "Hel" };
      throw new ServerUnavailable("worker died");
    };
    const stream = client.streamChatCompletion(params);
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const d of stream) got.push(d.content);
      })(),
      (error: unknown) => error instanceof UnavailableError && error.status === "UNAVAILABLE" && error.requestId === stream.requestId,
    );
    assert.deepEqual(got, ["Hel"]);
    assert.equal(stream.attempts, 1);
  });

  test("retries stop at maxAttempts, or at the deadline", async () => {
    behavior = async function* () {
      throw new ServerUnavailable("no worker");
    };
    const stream = client.streamChatCompletion(params, { retry: { maxAttempts: 3, initialBackoffMs: 5 } });
    await assert.rejects(stream.collect(), UnavailableError);
    assert.equal(stream.attempts, 3);
    const noRetry = client.streamChatCompletion(params, { retry: false });
    await assert.rejects(noRetry.collect(), UnavailableError);
    assert.equal(noRetry.attempts, 1);
    // A retry hint longer than the time left: give up at once rather than wait past the deadline.
    behavior = async function* () {
      throw new ServerUnavailable("draining", { retryAfterMs: 5_000 });
    };
    const t0 = Date.now();
    const late = client.streamChatCompletion(params, { timeoutMs: 1_000, retry: { maxBackoffMs: 5_000 } });
    await assert.rejects(late.collect(), UnavailableError);
    assert.ok(Date.now() - t0 < 900);
  });

  test("an AbortSignal cancels the stream on the server and throws CancelledError with the reason", async () => {
    behavior = async function* (_attempt, context) {
      while (!context.signal.aborted) {
        yield { content: "tok " };
        await sleep(10);
      }
    };
    const controller = new AbortController();
    const stream = client.streamChatCompletion(params, { signal: controller.signal });
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of stream) if (++n === 3) controller.abort(new Error("user pressed stop"));
      })(),
      (error: unknown) => error instanceof CancelledError && (error.cause as Error).message === "user pressed stop",
    );
    for (let i = 0; i < 50 && cancelledByClient === 0; i++) await sleep(10);
    assert.equal(cancelledByClient, 1);
    // Already aborted: nothing is sent.
    await assert.rejects(client.streamChatCompletion(params, { signal: AbortSignal.abort() }).collect(), CancelledError);
  });

  test("leaving the loop early cancels the server's work", async () => {
    behavior = async function* (_attempt, context) {
      while (!context.signal.aborted) {
        yield { content: "tok " };
        await sleep(10);
      }
    };
    for await (const _ of client.streamChatCompletion(params)) break;
    for (let i = 0; i < 50 && cancelledByClient === 0; i++) await sleep(10);
    assert.equal(cancelledByClient, 1);
  });

  test("a deadline ends a slow stream with DeadlineExceededError", async () => {
    behavior = async function* (_attempt, context) {
      while (!context.signal.aborted) {
        yield { content: "slow " };
        await sleep(100);
      }
    };
    const t0 = Date.now();
    await assert.rejects(client.streamChatCompletion(params, { timeoutMs: 300 }).collect(), DeadlineExceededError);
    assert.ok(Date.now() - t0 < 1_500);
  });

  test("errors are typed, with the server's reason, param and retry hint", async () => {
    const failWith = (error: Error): StreamBehavior =>
      async function* () {
        throw error;
      };
    behavior = failWith(new ClusterError("unauthenticated", "Incorrect API key provided."));
    await assert.rejects(client.streamChatCompletion(params).collect(), (e: unknown) => e instanceof AuthenticationError && e.message === "Incorrect API key provided.");
    behavior = failWith(new ClusterError("resource_exhausted", "Rate limit reached", { retryAfterMs: 1_500 }));
    await assert.rejects(client.streamChatCompletion(params).collect(), (e: unknown) => e instanceof RateLimitError && e.retryAfterMs === 1_500);
    assert.equal(attempts, 2, "neither was retried");
    behavior = failWith(new ClusterError("context_length_exceeded", "too long", { param: "messages" }));
    await assert.rejects(
      client.streamChatCompletion(params).collect(),
      (e: unknown) => e instanceof InvalidRequestError && e.reason === "context_length_exceeded" && e.param === "messages",
    );
    behavior = failWith(new ServerInvalidRequest("bad"));
    await assert.rejects(client.streamChatCompletion(params).collect(), InvalidRequestError);
  });

  test("unary calls: retried on UNAVAILABLE, typed errors, models listed", async () => {
    unary = async (attempt) => {
      if (attempt === 1) throw new ServerUnavailable("restarting");
    };
    const completion = await client.createChatCompletion(params);
    assert.equal(completion.message?.content, "Hi");
    assert.equal(attempts, 2);
    unary = async () => {
      throw new ClusterError("permission_denied", "disabled");
    };
    await assert.rejects(client.createChatCompletion(params), (e: unknown) => (e as Error).name === "PermissionDeniedError");
    const models = await client.listModels();
    assert.deepEqual(models.map((m) => m.id), ["SmolLM3-3B"]);
  });
});
