/**
 * The TypeScript SDK (`@smollm/client`) against a real local cluster: the
 * gateway's public gRPC API with API keys, the scheduler, a worker running
 * the tiny model. Streaming, whole answers, cancellation reaching the
 * worker, deadlines, retries while the gateway is not up yet, typed errors,
 * and the examples as a user would run them.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuthenticationError,
  CancelledError,
  DeadlineExceededError,
  InvalidRequestError,
  NotFoundError,
  RateLimitError,
  SmolLMClient,
  type ChatCompletionParams,
} from "@smollm/client";
import { hashApiKey } from "@smollm/gateway";
import { REPO_ROOT, freePort, startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { metric, scrape, until } from "./helpers.ts";

const KEY = "sk-smollm-sdk-test-key";
const LIMITED = "sk-smollm-sdk-limited";
const params = (content: string, maxTokens: number): ChatCompletionParams => ({
  model: "SmolLM3-3B",
  messages: [{ role: "user", content }],
  maxTokens,
});

describe("@smollm/client against a real cluster", () => {
  let cluster: LocalCluster;
  let client: SmolLMClient;
  let dir: string;
  const workerMetrics = async () => scrape(`http://127.0.0.1:${String(cluster.workers[0]?.ready["ops_port"])}/metrics`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "smollm-sdk-"));
    const keysFile = join(dir, "api-keys");
    writeFileSync(keysFile, `# the line format\nsdk:sha256:${hashApiKey(KEY)}\nlimited:sha256:${hashApiKey(LIMITED)}:1:\n`);
    cluster = await startLocalCluster({
      workers: 1,
      privateRedis: true,
      workerArgs: () => ["--slots", "4", "--context-size", "2048"],
      gatewayArgs: ["--api-keys-file", keysFile],
    });
    client = new SmolLMClient({ address: cluster.gatewayGrpcAddress, apiKey: KEY });
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("streams a completion: deltas, finish reason, usage, worker; whole completions and models too", async () => {
    const stream = client.streamChatCompletion(params("Bonjour !", 12));
    let text = "";
    let deltas = 0;
    for await (const delta of stream) {
      text += delta.content;
      deltas++;
    }
    assert.ok(deltas >= 2);
    assert.ok(stream.finishReason === "stop" || stream.finishReason === "length");
    assert.ok((stream.usage?.completionTokens ?? 0) > 0 && (stream.usage?.completionTokens ?? 0) <= 12);
    assert.equal(stream.workerId, "worker-0");
    assert.ok(text.length > 0 || stream.finishReason === "stop");
    const whole = await client.createChatCompletion(params("Hola", 6));
    assert.equal(whole.message?.role, "assistant");
    assert.ok((whole.usage?.completionTokens ?? 0) > 0);
    assert.deepEqual((await client.listModels()).map((m) => m.id), ["SmolLM3-3B"]);
  });

  test("an AbortSignal cancels the generation on the worker", async () => {
    const cancelled = async () => metric(await workerMetrics(), "smollm_worker_requests_total", { finish_reason: "cancelled" });
    const before = await cancelled();
    const controller = new AbortController();
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of client.streamChatCompletion(params("Raconte une longue histoire.", 1_200), { signal: controller.signal })) {
          if (++n === 3) controller.abort();
        }
      })(),
      CancelledError,
    );
    await until("the worker to count the cancellation", async () => (await cancelled()) > before, 5_000);
  });

  test("a deadline ends the call with DeadlineExceededError", async () => {
    const t0 = Date.now();
    // Greedy: the random tiny model never picks an end token greedily, so the
    // stream cannot finish before the deadline (sampled, it sometimes stops early).
    await assert.rejects(
      client.streamChatCompletion({ ...params("Raconte une longue histoire.", 1_200), temperature: 0 }, { timeoutMs: 150 }).collect(),
      DeadlineExceededError,
    );
    assert.ok(Date.now() - t0 < 3_000);
  });

  test("UNAVAILABLE before the first token is retried: a gateway that comes up late still answers", async () => {
    const port = await freePort();
    const late = new SmolLMClient({
      address: `127.0.0.1:${port}`,
      apiKey: KEY,
      retry: { maxAttempts: 40, initialBackoffMs: 100, maxBackoffMs: 400 },
      // grpc-js backs off reconnecting on its own; keep its backoff short like ours.
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 400 },
    });
    try {
      const stream = late.streamChatCompletion(params("Salut", 4), { timeoutMs: 60_000 });
      const done = stream.collect();
      await new Promise((r) => setTimeout(r, 500));
      await cluster.addGateway(["--grpc-port", String(port)]);
      const result = await done;
      assert.ok((result.usage?.completionTokens ?? 0) > 0);
      assert.ok(stream.attempts > 1, `attempts ${stream.attempts}`);
    } finally {
      late.close();
    }
  });

  test("typed errors: bad key, unknown model, prompt too long, rate limit with its retry hint", async () => {
    const anonymous = new SmolLMClient({ address: cluster.gatewayGrpcAddress, apiKey: "sk-wrong" });
    const limited = new SmolLMClient({ address: cluster.gatewayGrpcAddress, apiKey: LIMITED });
    try {
      await assert.rejects(anonymous.streamChatCompletion(params("hi", 2)).collect(), (e: unknown) => e instanceof AuthenticationError && e.status === "UNAUTHENTICATED");
      await assert.rejects(client.createChatCompletion({ ...params("hi", 2), model: "gpt-5" }), (e: unknown) => e instanceof NotFoundError && /gpt-5/.test(e.message));
      await assert.rejects(
        client.streamChatCompletion(params("mot ".repeat(4_000), 2)).collect(),
        (e: unknown) => e instanceof InvalidRequestError && e.reason === "context_length_exceeded" && e.param === "messages",
      );
      await limited.createChatCompletion(params("hi", 2)); // its one request per minute
      await assert.rejects(
        limited.createChatCompletion(params("hi", 2)),
        (e: unknown) => e instanceof RateLimitError && (e.retryAfterMs ?? 0) > 10_000 && typeof e.requestId === "string",
      );
    } finally {
      anonymous.close();
      limited.close();
    }
  });

  test("the examples run against the cluster as documented", async () => {
    const run = (file: string, args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", file, ...args], {
          cwd: REPO_ROOT,
          env: { ...process.env, SMOLLM_ADDRESS: cluster.gatewayGrpcAddress, SMOLLM_API_KEY: KEY, MAX_TOKENS: "8" },
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("exit", (code) => resolve({ code, stdout, stderr }));
      });
    const stream = await run("packages/client/examples/stream.ts", ["Bonjour"]);
    assert.equal(stream.code, 0, stream.stderr);
    assert.match(stream.stderr, /^\[(stop|length)\] \d+ tokens from worker-0, request [0-9a-f-]{36}, 1 attempt\(s\)/m);
    const errors = await run("packages/client/examples/errors-and-deadlines.ts", []);
    assert.equal(errors.code, 0, errors.stderr);
    assert.match(errors.stdout, /\(gave up after 5 ms\)/);
  });
});
