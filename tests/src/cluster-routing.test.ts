/**
 * The cluster issue end to end: three real worker processes (two with a
 * short context, one long), the scheduler routing by KV-cache locality from
 * the workers' cache events in a private Redis, the gateway over HTTP and
 * gRPC. Faults here are the routing-relevant ones (a worker killed, the
 * scheduler restarted, Redis stopped); the fault suite covers the rest.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { ClusterError } from "@smollm/common";
import { createClient, publicApi } from "@smollm/proto";
import { startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { metric, scrape, until } from "./helpers.ts";

let cluster: LocalCluster;
let client: OpenAI;

before(async () => {
  cluster = await startLocalCluster({
    workers: 3,
    privateRedis: true,
    workerArgs: (i) => ["--slots", "4", "--context-size", i === 2 ? "4096" : "1024", "--heartbeat-ms", "200"],
    schedulerArgs: ["--registry-refresh-ms", "100"],
  });
  client = new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => {
  await cluster?.stop();
});

type Msg = OpenAI.ChatCompletionMessageParam;

async function turn(messages: Msg[], maxTokens = 8): Promise<{ worker: string; cached: number; prompt: number; text: string }> {
  const { data, response } = await client.chat.completions
    .create({ model: "SmolLM3-3B", messages, max_tokens: maxTokens, temperature: 0 })
    .withResponse();
  const text = data.choices[0]?.message.content ?? "";
  messages.push({ role: "assistant", content: text });
  return {
    worker: response.headers.get("x-smollm-worker-id") ?? "",
    cached: data.usage?.prompt_tokens_details?.cached_tokens ?? 0,
    prompt: data.usage?.prompt_tokens ?? 0,
    text,
  };
}

function conversation(topic: string): Msg[] {
  return [
    { role: "system", content: `/no_think You answer questions about ${topic}. Be brief, precise and friendly; cite sources when you can.` },
    { role: "user", content: `Tell me one fact about ${topic}.` },
  ];
}

const schedulerMetrics = async () => scrape(`http://127.0.0.1:${String(cluster.scheduler.ready["ops_port"])}/metrics`);

describe("cluster: KV-locality and context routing through Redis", () => {
  test("the turns of a conversation land on the worker holding their prefix and report cached tokens", async () => {
    const messages = conversation("the Loire valley");
    const first = await turn(messages);
    for (let i = 0; i < 3; i++) {
      messages.push({ role: "user", content: `And another one, number ${i + 2}?` });
      const next = await turn(messages);
      assert.equal(next.worker, first.worker, `turn ${i + 2} moved from ${first.worker} to ${next.worker}`);
      assert.ok(next.cached > first.prompt / 2, `turn ${i + 2}: cached ${next.cached} of ${next.prompt}`);
    }
    const m = await schedulerMetrics();
    assert.ok(metric(m, "smollm_scheduler_routing_decisions_total", { outcome: "prefix" }) >= 3);
    assert.ok(metric(m, "smollm_scheduler_prefix_hit_tokens_total") > 0);
    await until("the index gauge to show blocks", async () => metric(await schedulerMetrics(), "smollm_scheduler_kv_index_blocks") > 0, 3_000);
  });

  test("different conversations spread across workers", async () => {
    const topics = ["Lisbon", "Bavaria", "Sicily", "Andalusia", "Provence", "Tuscany", "Porto", "Bretagne", "Galicia"];
    const workers = await Promise.all(topics.map(async (t) => (await turn(conversation(t), 24)).worker));
    assert.ok(new Set(workers).size >= 2, `all on ${[...new Set(workers)].join(",")}`);
  });

  test("a long prompt goes only to a worker whose context fits it; one that fits none is refused naming the limit", async () => {
    const long = "La mer, la mer, toujours recommencée. ".repeat(90);
    for (let i = 0; i < 3; i++) {
      const r = await turn([{ role: "system", content: "/no_think" }, { role: "user", content: `${i} ${long}` }], 4);
      assert.ok(r.prompt > 1024, `prompt ${r.prompt} tokens`);
      assert.equal(r.worker, "worker-2");
    }
    await assert.rejects(
      client.chat.completions.create({ model: "SmolLM3-3B", messages: [{ role: "user", content: long.repeat(4) }], max_tokens: 4 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /maximum context length is 4096 tokens/.test(e.message),
    );
  });

  test("the public gRPC API gives the same results as HTTP and names the worker", async () => {
    const grpc = createClient(publicApi.ChatService, cluster.gatewayGrpcAddress);
    try {
      const messages = [{ role: "system", content: "/no_think" }, { role: "user", content: "Wie spät ist es in Berlin?" }];
      const http = await client.chat.completions.create({ model: "SmolLM3-3B", messages: messages as Msg[], max_tokens: 16, temperature: 0 });
      const params = { model: "SmolLM3-3B", messages, maxTokens: 16, temperature: 0 };
      const whole = await grpc.createChatCompletion({ params });
      assert.equal(whole.message?.content, http.choices[0]?.message.content);
      assert.equal(whole.usage?.promptTokens, http.usage?.prompt_tokens);
      let text = "";
      const headers: Record<string, string>[] = [];
      let last: publicApi.StreamChatCompletionResponse | undefined;
      for await (const chunk of grpc.streamChatCompletion({ params }, { onHeaders: (h) => headers.push(h) })) {
        text += chunk.content;
        last = chunk;
      }
      assert.equal(text, http.choices[0]?.message.content);
      assert.match(headers[0]?.["x-smollm-worker-id"] ?? "", /^worker-\d$/);
      assert.equal(last?.workerId, headers[0]?.["x-smollm-worker-id"]);
      assert.ok((last?.usage?.cachedTokens ?? 0) > 0, "the repeated prompt was served from cache");
    } finally {
      grpc.close();
    }
  });

  test("a gRPC deadline propagates to the worker, which frees the slot", async () => {
    const grpc = createClient(publicApi.ChatService, cluster.gatewayGrpcAddress);
    try {
      // Greedy: the random model never ends by itself greedily, so the stream outlives the deadline.
      const params = { model: "SmolLM3-3B", messages: [{ role: "user", content: "Raconte une très longue histoire." }], maxTokens: 900, temperature: 0 };
      await assert.rejects(
        async () => {
          for await (const _ of grpc.streamChatCompletion({ params }, { deadline: Date.now() + 120 })) void _;
        },
        (e: unknown) => e instanceof ClusterError && e.code === "deadline_exceeded",
      );
    } finally {
      grpc.close();
    }
    const active = async (): Promise<number> => {
      let n = 0;
      for (const w of cluster.workers) n += metric(await scrape(`http://127.0.0.1:${String(w.ready["ops_port"])}/metrics`), "smollm_worker_active_slots");
      return n;
    };
    await until("slots freed after the deadline", async () => (await active()) === 0, 5_000);
  });

  test("after a scheduler restart, prefix routing still works (index rebuilt from Redis)", async () => {
    const messages = conversation("the Camino de Santiago");
    const first = await turn(messages);
    await cluster.restartScheduler("kill");
    messages.push({ role: "user", content: "¿Y otro dato?" });
    const next = await turn(messages);
    assert.equal(next.worker, first.worker);
    assert.ok(next.cached > first.prompt / 2, `cached ${next.cached}`);
    const m = await schedulerMetrics();
    assert.equal(metric(m, "smollm_scheduler_routing_decisions_total", { outcome: "prefix" }), 1);
  });

  test("with Redis stopped requests still succeed (load-only); prefix routing returns after Redis restarts", async () => {
    const redis = cluster.redis;
    assert.ok(redis);
    await redis.stop();
    for (let i = 0; i < 4; i++) {
      const r = await turn(conversation(`outage ${i}`));
      assert.match(r.worker, /^worker-\d$/);
    }
    await until("the scheduler to notice the outage", async () => metric(await schedulerMetrics(), "smollm_scheduler_kv_index_healthy") === 0, 5_000);
    await redis.restart();
    await until(
      "workers re-registered and the index healthy",
      async () => {
        const m = await schedulerMetrics();
        return metric(m, "smollm_scheduler_kv_index_healthy") === 1 && metric(m, "smollm_scheduler_workers", { state: "ready" }) === 3;
      },
      15_000,
    );
    const messages = conversation("the Douro river");
    const first = await turn(messages);
    await sleep(300); // the worker's KV events are batched
    messages.push({ role: "user", content: "E mais um?" });
    const next = await turn(messages);
    assert.equal(next.worker, first.worker);
    assert.ok(next.cached > first.prompt / 2, `cached ${next.cached}`);
  });

  test("a worker killed with SIGKILL leaves routing and new requests keep succeeding", async () => {
    const victim = cluster.workers[1];
    assert.ok(victim);
    victim.signal("SIGKILL");
    // At once: requests routed to it fail before their first token and are retried elsewhere.
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => turn(conversation(`after the kill ${i}`))));
    for (const r of results) assert.notEqual(r.worker, "worker-1");
    await until(
      "the dead worker to leave the routing table",
      async () => metric(await schedulerMetrics(), "smollm_scheduler_workers", { state: "ready" }) === 2,
      5_000,
    );
  });
});
