/**
 * The worker end to end over gRPC: startWorker on the tiny model with a
 * private Redis, a typed client, registration, metrics, health and drain.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { ClusterError, createLogger } from "@smollm/common";
import { ClusterKeys, parseWorkerInfo } from "@smollm/cluster-state";
import { createClient, FinishReason, Health, HealthCheckResponse_ServingStatus, WorkerService, type ServiceClient } from "@smollm/proto";
import { freePort, startTestRedis, type TestRedis } from "@smollm/testkit";
import { loadConfig } from "./config.ts";
import { startWorker, type RunningWorker } from "./worker.ts";

const PREFIX = "worker-test:";
let redis: TestRedis;
let probe: Redis;
let worker: RunningWorker;
let client: ServiceClient<typeof WorkerService.method>;

before(async () => {
  redis = await startTestRedis();
  probe = new Redis(redis.url);
  const config = loadConfig({
    argv: [
      "--model", "tiny", "--host", "127.0.0.1", "--grpc-port", "0", "--ops-port", "0",
      "--slots", "8", "--context-size", "1024", "--worker-id", "w-test",
      "--redis-url", redis.url, "--redis-prefix", PREFIX, "--heartbeat-ms", "200",
    ],
    env: {},
  });
  worker = await startWorker(config, createLogger({ service: "worker", level: "warn" }));
  client = createClient(WorkerService, `127.0.0.1:${worker.grpcPort}`);
});

after(async () => {
  client?.close();
  await worker?.close();
  probe?.disconnect();
  await redis?.stop();
});

async function generate(request: Parameters<typeof client.generate>[0], signal?: AbortSignal) {
  const events = [];
  let text = "";
  for await (const response of client.generate(request, signal ? { signal } : {})) {
    events.push(response.event);
    if (response.event.case === "delta") text += response.event.value.text;
  }
  return { events, text };
}

async function opsGet(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${worker.opsPort}${path}`);
  return { status: res.status, body: await res.text() };
}

async function healthCheck(service: string): Promise<HealthCheckResponse_ServingStatus> {
  const health = createClient(Health, `127.0.0.1:${worker.grpcPort}`);
  try {
    return (await health.check({ service })).status;
  } finally {
    health.close();
  }
}

test("Generate streams started, deltas and finished; GetStatus, health and registration agree", async () => {
  const { events, text } = await generate({
    requestId: "r1",
    promptTokens: [100, 200, 300, 400],
    maxTokens: 20,
    ignoreEos: true,
    sampling: { temperature: 0.7, seed: 3 },
  });
  const first = events[0];
  assert.equal(first?.case, "started");
  if (first?.case === "started") {
    assert.equal(first.value.workerId, "w-test");
    assert.equal(first.value.promptTokens, 4);
  }
  const last = events.at(-1);
  assert.equal(last?.case, "finished");
  if (last?.case === "finished") {
    assert.equal(last.value.reason, FinishReason.LENGTH);
    assert.equal(last.value.usage?.promptTokens, 4);
    assert.equal(last.value.usage?.completionTokens, 20);
  }
  assert.ok(text.length > 0);
  const deltaTokens = events.reduce((n, e) => n + (e?.case === "delta" ? e.value.tokens : 0), 0);
  assert.ok(deltaTokens > 0 && deltaTokens <= 20);

  const status = await client.getStatus({});
  assert.equal(status.workerId, "w-test");
  assert.equal(status.slots, 8);
  assert.equal(status.contextSize, 1024);
  assert.equal(status.draining, false);
  assert.equal(status.model, worker.model);

  assert.equal(await healthCheck(""), HealthCheckResponse_ServingStatus.SERVING);
  assert.equal(await healthCheck("smollm.internal.v1.WorkerService"), HealthCheckResponse_ServingStatus.SERVING);
  await assert.rejects(healthCheck("nope"));

  const info = parseWorkerInfo(await probe.get(new ClusterKeys(PREFIX).worker("w-test")));
  assert.equal(info?.address, `127.0.0.1:${worker.grpcPort}`);
  assert.equal(info?.slots, 8);
  assert.equal(info?.maxQueue, 64);
  assert.equal(info?.draining, false);
  assert.equal(info?.freeKvTokens, 8 * 1024);

  // The slot's 4 + 19 cached tokens make one full 16-token block in the prefix-cache index.
  const keys = new ClusterKeys(PREFIX);
  const deadline = Date.now() + 2_000;
  while ((await probe.scard(keys.kvBlocks("w-test"))) !== 1) {
    assert.ok(Date.now() < deadline, "kv blocks not published");
    await sleep(10);
  }
  assert.ok((await probe.xlen(keys.kvEvents)) > 0);
});

test("16 concurrent streams share decode batches; malformed constraints are refused", async () => {
  const runs = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      generate({ promptTokens: [100 + i, 200 + i, 300 + i], maxTokens: 32, ignoreEos: true, sampling: { temperature: 1, seed: i } }),
    ),
  );
  for (const r of runs) {
    const last = r.events.at(-1);
    assert.ok(last?.case === "finished" && last.value.usage?.completionTokens === 32);
  }
  const metrics = (await opsGet("/metrics")).body;
  const bucket = (le: string): number =>
    Number(new RegExp(`smollm_worker_decode_batch_sequences_bucket\\{le="${le}"[^}]*\\} (\\d+)`).exec(metrics)?.[1] ?? NaN);
  const count = Number(/smollm_worker_decode_batch_sequences_count\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? NaN);
  assert.ok(count - bucket("1") > count / 2, `batches with >1 sequence: ${count - bucket("1")} of ${count}`);
  assert.ok(count - bucket("4") > 0, "some batches held more than 4 sequences");
  assert.match(metrics, /smollm_worker_requests_total\{finish_reason="length"[^}]*\} 17/);
  assert.match(metrics, /smollm_worker_generated_tokens_total\{[^}]*\} 532/);

  for (const bad of [
    { grammar: "root ::= (" },
    { jsonSchema: "{not json" },
    { grammar: 'root ::= "a"', jsonSchema: "{}" },
    { jsonPrefix: "<x>" },
    { topLogprobs: 21 },
  ]) {
    await assert.rejects(
      generate({ promptTokens: [1, 2], maxTokens: 4, ...bad }),
      (e: unknown) => e instanceof ClusterError && e.code === "invalid_argument",
      JSON.stringify(bad),
    );
  }
  await assert.rejects(
    generate({ promptTokens: [1, 2], maxTokens: 2000 }),
    (e: unknown) => e instanceof ClusterError && e.code === "context_length_exceeded",
  );
});

test("a grammar constrains the output and logprobs come with the deltas, over gRPC", async () => {
  const { events, text } = await generate({
    promptTokens: [10, 11, 12],
    maxTokens: 16,
    grammar: 'root ::= "oui" | "non" | "sí"',
    logprobs: true,
    topLogprobs: 3,
    sampling: { temperature: 1, seed: 7 },
  });
  assert.ok(["oui", "non", "sí"].includes(text), text);
  const logprobs = events.flatMap((e) => (e.case === "delta" ? e.value.logprobs : []));
  const finished = events.at(-1);
  assert.ok(finished?.case === "finished");
  // Every sampled token but the final end-of-generation one has an entry; their bytes are the text.
  assert.equal(logprobs.length, (finished.value.usage?.completionTokens ?? 0) - 1);
  assert.equal(Buffer.concat(logprobs.map((l) => l.sampled?.bytes ?? new Uint8Array())).toString("utf8"), text);
  for (const l of logprobs) {
    assert.ok((l.sampled?.logprob ?? 1) <= 0);
    assert.ok(l.top.length >= 1 && l.top.length <= 3);
  }
});

test("cancelling the call frees the slot", async () => {
  const controller = new AbortController();
  await assert.rejects(async () => {
    for await (const response of client.generate({ promptTokens: [5, 6, 7], maxTokens: 1000, ignoreEos: true }, { signal: controller.signal })) {
      if (response.event.case === "delta") controller.abort();
    }
  }, (e: unknown) => e instanceof ClusterError && e.code === "cancelled");
  const deadline = Date.now() + 1_000;
  while ((await client.getStatus({})).activeSlots !== 0) {
    assert.ok(Date.now() < deadline, "slot not freed");
    await sleep(5);
  }
});

test("close() drains: readiness off, registration draining, new calls UNAVAILABLE, in-flight ones finish", async () => {
  let finished: FinishReason | undefined;
  let started = false;
  const inFlight = (async () => {
    for await (const response of client.generate({ promptTokens: [9, 8, 7], maxTokens: 600, ignoreEos: true })) {
      if (response.event.case === "started") started = true;
      if (response.event.case === "finished") finished = response.event.value.reason;
    }
  })();
  while (!started) await sleep(2);
  const closing = worker.close();
  await sleep(30);
  assert.equal((await opsGet("/readyz")).status, 503);
  assert.equal(parseWorkerInfo(await probe.get(new ClusterKeys(PREFIX).worker("w-test")))?.draining, true);
  await assert.rejects(
    generate({ promptTokens: [1, 2], maxTokens: 4 }),
    (e: unknown) => e instanceof ClusterError && e.code === "unavailable",
  );
  await inFlight;
  assert.equal(finished, FinishReason.LENGTH);
  await closing;
  assert.equal(await probe.get(new ClusterKeys(PREFIX).worker("w-test")), null);
  assert.equal(await probe.exists(new ClusterKeys(PREFIX).kvBlocks("w-test")), 0, "its KV blocks left the index");
});

test("a worker serves while Redis is down; a drain that times out stops generations with UNAVAILABLE", async () => {
  const deadRedis = `redis://127.0.0.1:${await freePort()}`;
  const config = loadConfig({
    argv: ["--model", "tiny", "--host", "127.0.0.1", "--grpc-port", "0", "--ops-port", "0", "--slots", "2",
      "--context-size", "4096", "--worker-id", "w-no-redis", "--redis-url", deadRedis, "--drain-timeout-ms", "300"],
    env: {},
  });
  const lonely = await startWorker(config, createLogger({ service: "worker", level: "silent" }));
  const c = createClient(WorkerService, `127.0.0.1:${lonely.grpcPort}`);
  try {
    let completion = 0;
    for await (const r of c.generate({ promptTokens: [1, 2, 3], maxTokens: 5, ignoreEos: true })) {
      if (r.event.case === "finished") completion = r.event.value.usage?.completionTokens ?? 0;
    }
    assert.equal(completion, 5);
    assert.equal((await fetch(`http://127.0.0.1:${lonely.opsPort}/readyz`)).status, 200);

    let started = false;
    const long = (async () => {
      for await (const r of c.generate({ promptTokens: [1, 2, 3], maxTokens: 4000, ignoreEos: true })) {
        if (r.event.case === "started") started = true;
      }
    })().then(() => undefined, (e: unknown) => e);
    while (!started) await sleep(2);
    const t0 = Date.now();
    await lonely.close();
    assert.ok(Date.now() - t0 < 3_000, `closed in ${Date.now() - t0} ms`);
    const error = await long;
    assert.ok(error instanceof ClusterError && error.code === "unavailable", String(error));
  } finally {
    c.close();
    await lonely.close();
  }
});
