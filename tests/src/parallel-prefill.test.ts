/**
 * Block-parallel prefill and KV transfer between workers, with real
 * processes: a private redis-server, the scheduler, three workers running
 * node-llama-cpp on the generated tiny smollm3 model, and the gateway.
 *
 * Sizes are kept to what a 2-core machine shared with other work does in a
 * few minutes; bench/src/parallel-prefill.ts measures 32k and 128k prompts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { SchedulerService, WorkerService, createClient } from "@smollm/proto";
import { metric, readSse, scrape, until } from "./helpers.ts";

let cluster: LocalCluster;
const STALL_MS = 4_000;

before(async () => {
  cluster = await startLocalCluster({
    workers: 3,
    privateRedis: true,
    workerArgs: () => [
      "--slots", "2", "--context-size", "24576", "--threads", "1", "--heartbeat-ms", "300",
      "--kv-stall-timeout-ms", String(STALL_MS), "--prefill-step-tokens", "512",
    ],
    schedulerArgs: [
      "--parallel-prefill-min-tokens", "8192", "--parallel-prefill-max-workers", "3", "--parallel-prefill-anchor", "1024",
      "--parallel-prefill-min-block-tokens", "1024", "--prefix-fetch-min-tokens", "512",
      // Load decides routing, so a prefix cached on one worker can be wanted on another.
      "--weight-prefix", "0",
      // Its "routed" lines name each request's decoder.
      "--log-level", "info",
    ],
  });
});
after(async () => {
  await cluster?.stop();
});

const WORDS = ["alpha", "river", "stone", "quiet", "number", "seven", "bright", "market", "window", "garden", "yellow", "signal", "paper", "forest", "engine", "silver"];
/** Deterministic text; the tiny model's vocabulary makes about 4 tokens of each word. */
function text(words: number, seed: number): string {
  let x = seed;
  return Array.from({ length: words }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return WORDS[x % WORDS.length];
  }).join(" ");
}

const opsUrl = (i: number): string => `http://127.0.0.1:${String(cluster.workers[i]?.ready["ops_port"])}/metrics`;
const workerIndex = (id: string): number => cluster.workers.findIndex((w) => w.ready["worker_id"] === id || w.label === id);
/** One metric of every worker (NaN for `skip`, e.g. a stopped process that would never answer). */
async function workerMetric(name: string, labels: Record<string, string> = {}, skip = -1): Promise<number[]> {
  return Promise.all(cluster.workers.map(async (_, i) => (i === skip ? Number.NaN : metric(await scrape(opsUrl(i)), name, labels))));
}
const sum = (xs: number[]): number => xs.reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);

function chat(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "SmolLM3-3B", temperature: 0, ...body }),
    ...(signal ? { signal } : {}),
  });
}

describe("block-parallel prefill across workers", () => {
  test("a ~20k-token prompt split over 3 workers streams a completion with usage", async () => {
    const servedBefore = sum(await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "ok" }));
    const res = await chat({
      messages: [{ role: "user", content: text(5000, 1) }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(res.status, 200);
    const events = await readSse(res.body!);
    assert.equal(events[events.length - 1], "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: { finish_reason: string | null }[]; usage?: Record<string, number> });
    const usage = chunks.find((c) => c.usage)?.usage;
    assert.ok(usage, "usage chunk");
    assert.ok(usage["prompt_tokens"]! > 19_000, `prompt tokens ${usage["prompt_tokens"]}`);
    assert.equal(usage["completion_tokens"], 12);
    assert.equal(chunks.flatMap((c) => c.choices).find((c) => c.finish_reason)?.finish_reason, "length");
    // One worker assembled and decoded; the other two each prefilled a block for it.
    const decoder = workerIndex(res.headers.get("x-smollm-worker-id") ?? "");
    assert.ok(decoder >= 0);
    const assembled = await workerMetric("smollm_worker_parallel_prefills_total", { outcome: "ok" });
    assert.equal(assembled[decoder], 1);
    const served = await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "ok" });
    assert.equal(sum(served) - servedBefore, 2);
    assert.equal(served[decoder], 0, "the decoder computes its own block locally");
    const received = await workerMetric("smollm_worker_kv_transfer_bytes_total", { direction: "received", kind: "block" });
    const sent = await workerMetric("smollm_worker_kv_transfer_bytes_total", { direction: "sent", kind: "block" });
    assert.ok(received[decoder]! > 1_000_000, `received ${received[decoder]} bytes`);
    assert.equal(sum(sent), received[decoder]);
    const plans = metric(await scrape(`http://127.0.0.1:${String(cluster.scheduler.ready["ops_port"])}/metrics`), "smollm_scheduler_kv_plans_total", { kind: "parallel_prefill" });
    assert.ok(plans >= 1);
  });

  test("exactness over gRPC: with the anchor = everything before each block, the completion equals single-worker prefill", async () => {
    const scheduler = createClient(SchedulerService, `127.0.0.1:${String(cluster.scheduler.ready["grpc_port"])}`);
    const [w0, w1, w2] = cluster.workers.map((w) => createClient(WorkerService, String(w.ready["address"])));
    try {
      // The scheduler tokenizes (exact prefill: no plan); ~6k tokens keep the full-anchor blocks cheap.
      const route = await scheduler.route({ requestId: "exact-tokens", prompt: text(1500, 2), maxTokens: 24, exactPrefill: true });
      assert.equal(route.parallelPrefill, undefined);
      const tokens = route.promptTokens;
      const n = tokens.length - 1;
      const generate = async (client: typeof w0, plan?: object): Promise<{ text: string; cached: number }> => {
        let out = "";
        let cached = -1;
        for await (const m of client!.generate({ requestId: "exact", promptTokens: tokens, maxTokens: 24, ignoreEos: true, ...(plan ?? {}) })) {
          if (m.event.case === "delta") out += m.event.value.text;
          if (m.event.case === "finished") cached = m.event.value.usage?.cachedTokens ?? -1;
        }
        return { text: out, cached };
      };
      const single = await generate(w2);
      const a1 = Math.floor(n / 3 / 64) * 64;
      const a2 = Math.floor((2 * n) / 3 / 64) * 64;
      const w1Address = String(cluster.workers[1]!.ready["address"]);
      const parallel = await generate(w0, {
        parallelPrefill: {
          fullAnchor: true,
          anchorTokens: 0,
          blocks: [
            { start: 0, end: a1, workerId: "worker-0", workerAddress: "" },
            { start: a1, end: a2, workerId: "worker-1", workerAddress: w1Address },
            { start: a2, end: n, workerId: "worker-1", workerAddress: w1Address },
          ],
        },
      });
      assert.ok(single.text.length > 0);
      assert.equal(parallel.text, single.text, "greedy completions are identical");
      assert.equal(parallel.cached, 0, "assembled KV is computed, not cached");
      void w1;
    } finally {
      scheduler.close();
      for (const c of [w0, w1, w2]) c?.close();
    }
  });

  test("cancelling during prefill stops the work on every worker", async () => {
    const cancelledBefore = sum(await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "cancelled" }));
    const abort = new AbortController();
    const pending = chat({ messages: [{ role: "user", content: text(4000, 3) }], max_tokens: 8, stream: true }, abort.signal).then(
      async (res) => {
        // Headers may come before the prefill; the body is cut by the abort.
        await readSse(res.body!).catch(() => []);
      },
      () => undefined,
    );
    await until("two workers prefilling a block", async () => sum(await workerMetric("smollm_worker_prefill_blocks_active")) >= 2, 60_000);
    const abortedAt = Date.now();
    abort.abort();
    await pending;
    await until(
      "every worker idle",
      async () =>
        sum(await workerMetric("smollm_worker_prefill_blocks_active")) === 0 && sum(await workerMetric("smollm_worker_active_slots")) === 0,
      20_000,
    );
    const stoppedMs = Date.now() - abortedAt;
    assert.ok(stoppedMs < 20_000, `stopped after ${stoppedMs} ms`);
    const cancelled = sum(await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "cancelled" }));
    assert.equal(cancelled - cancelledBefore, 2, "both blocks were cancelled, not finished");
    assert.equal(sum(await workerMetric("smollm_worker_parallel_prefills_total", { outcome: "cancelled" })), 1);
  });

  test("a prefix fetched from another worker gives the same continuation as one computed locally", async () => {
    const content = text(800, 4);
    const first = await chat({ messages: [{ role: "user", content }], max_tokens: 16, ignore_eos: true });
    assert.equal(first.status, 200);
    const local = (await first.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } };
    const holder = first.headers.get("x-smollm-worker-id") ?? "";
    const holderIndex = workerIndex(holder);
    assert.ok(holderIndex >= 0);
    // Keep the holder busier than the others (one of its two slots), so load routes elsewhere.
    const busy = new AbortController();
    const holderClient = createClient(WorkerService, String(cluster.workers[holderIndex]!.ready["address"]));
    const occupy = (async () => {
      try {
        for await (const _ of holderClient.generate({ promptTokens: [300, 301, 302], maxTokens: 0, ignoreEos: true }, { signal: busy.signal })) void _;
      } catch {
        // cancelled below
      }
    })();
    try {
      await until("holder busy in the registry", async () => (await workerMetric("smollm_worker_active_slots"))[holderIndex] === 1, 10_000);
      await sleep(900); // a heartbeat carries it to the scheduler
      const fetchedBefore = await workerMetric("smollm_worker_prefix_fetches_total", { outcome: "ok" });
      const second = await chat({ messages: [{ role: "user", content }], max_tokens: 16, ignore_eos: true });
      assert.equal(second.status, 200);
      const remote = (await second.json()) as typeof local & { usage: { prompt_tokens_details: { cached_tokens: number } } };
      const decoder = workerIndex(second.headers.get("x-smollm-worker-id") ?? "");
      assert.notEqual(decoder, holderIndex, "routed to another worker");
      const fetched = await workerMetric("smollm_worker_prefix_fetches_total", { outcome: "ok" });
      assert.equal(fetched[decoder]! - fetchedBefore[decoder]!, 1, "the prefix was fetched, not recomputed");
      assert.ok(remote.usage.prompt_tokens_details.cached_tokens >= local.usage.prompt_tokens - 32, "fetched tokens count as cached");
      assert.equal(remote.choices[0]?.message.content, local.choices[0]?.message.content);
    } finally {
      busy.abort();
      await occupy;
      holderClient.close();
    }
  });

  test("a prefill worker that stalls mid-block is given up and its block computed by the decoder", async () => {
    const failoversBefore = sum(await workerMetric("smollm_worker_prefill_block_failovers_total"));
    const pending = chat({ messages: [{ role: "user", content: text(3000, 5) }], max_tokens: 8 });
    let stopped = -1;
    await until(
      "a helper prefilling",
      async () => {
        const active = await workerMetric("smollm_worker_prefill_blocks_active");
        stopped = active.findIndex((x) => x > 0);
        return stopped >= 0;
      },
      60_000,
    );
    cluster.workers[stopped]!.signal("SIGSTOP");
    try {
      const res = await pending;
      assert.equal(res.status, 200);
      const body = (await res.json()) as { usage: { completion_tokens: number } };
      assert.equal(body.usage.completion_tokens, 8);
      assert.ok(sum(await workerMetric("smollm_worker_prefill_block_failovers_total", {}, stopped)) >= failoversBefore + 1);
    } finally {
      cluster.workers[stopped]!.signal("SIGCONT");
    }
    await until("the stalled worker cleans up", async () => (await workerMetric("smollm_worker_prefill_blocks_active"))[stopped] === 0, 30_000);
  });

  // Last: it kills a worker.
  test("a decoder that dies mid-prefill: the helpers stop, and the request is routed again and completes", async () => {
    const cancelledBeforeBy = await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "cancelled" });
    const requestId = `dying-decoder-${Date.now()}`;
    const pending = fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": requestId },
      body: JSON.stringify({ model: "SmolLM3-3B", temperature: 0, messages: [{ role: "user", content: text(4500, 6) }], max_tokens: 8 }),
    });
    // The decoder is the worker the scheduler routed the request to (its log
    // says so); inferring it from slot and block gauges races: a helper
    // counts its block a moment before it takes a slot.
    let decoder = -1;
    await until(
      "a helper prefilling for the decoder",
      async () => {
        const routed = cluster.scheduler.logs.find((l) => l["msg"] === "routed" && l["request_id"] === requestId);
        if (routed === undefined) return false;
        decoder = workerIndex(String(routed["worker_id"]));
        const blocks = await workerMetric("smollm_worker_prefill_blocks_active");
        return decoder >= 0 && blocks.some((x, i) => i !== decoder && x > 0);
      },
      60_000,
    );
    cluster.workers[decoder]!.signal("SIGKILL");
    const res = await pending;
    assert.equal(res.status, 200, await res.clone().text());
    assert.notEqual(workerIndex(res.headers.get("x-smollm-worker-id") ?? ""), decoder);
    const body = (await res.json()) as { usage: { completion_tokens: number } };
    assert.equal(body.usage.completion_tokens, 8);
    const alive = (xs: number[]): number => sum(xs.map((x, i) => (i === decoder ? 0 : x)));
    await until("the helpers are idle", async () => alive(await workerMetric("smollm_worker_prefill_blocks_active", {}, decoder)) === 0, 20_000);
    // Counted on the helpers only: the decoder's own earlier cancellations died with it.
    const cancelledBefore = alive(cancelledBeforeBy);
    const cancelled = alive(await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome: "cancelled" }, decoder));
    const served = await Promise.all(
      ["ok", "cancelled", "error"].map(async (outcome) => `${outcome} ${(await workerMetric("smollm_worker_prefill_blocks_served_total", { outcome }, decoder)).join("/")}`),
    );
    assert.ok(
      cancelled >= cancelledBefore + 1,
      `the dead decoder's blocks were cancelled on the helpers (decoder worker-${decoder}; blocks served by outcome: ${served.join(", ")}; cancelled before ${cancelledBefore})`,
    );
  });
});
