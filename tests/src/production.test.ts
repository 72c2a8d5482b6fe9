/**
 * Production readiness with real processes: metrics that pass `promtool
 * check metrics`, request ids across the services' JSON logs, SIGTERM drains
 * (a rolling restart of workers under load, a gateway, the scheduler), API
 * keys and per-key limits enforced across two gateways sharing Redis,
 * request size and prompt limits. TLS and mutual TLS: production-tls.test.ts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { SmolLMClient } from "@smollm/client";
import { startLocalCluster, type LocalCluster, type ServiceProcess } from "@smollm/testkit";
import { metric, scrape, until } from "./helpers.ts";

const MODEL = "SmolLM3-3B";
const httpUrl = (p: ServiceProcess): string => `http://127.0.0.1:${String(p.ready["http_port"])}`;
const opsUrl = (p: ServiceProcess): string => `http://127.0.0.1:${String(p.ready["ops_port"])}`;

/** What became of one streamed chat completion. */
interface StreamOutcome {
  startedAt: number;
  headersAt?: number;
  endedAt?: number;
  status?: number;
  workerId?: string | undefined;
  retryAfter?: string | null;
  completionTokens?: number;
  done: boolean;
  error?: string;
}

/** Streams one completion of exactly `tokens` tokens (ignore_eos) and reports how it went; never throws. */
async function streamCompletion(
  baseUrl: string,
  tokens: number,
  options: { headers?: Record<string, string>; signal?: AbortSignal; onHeaders?: (status: number) => void } = {},
): Promise<StreamOutcome> {
  const out: StreamOutcome = { startedAt: Date.now(), done: false };
  try {
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: `Count to ${tokens}, slowly.` }],
        max_tokens: tokens,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    out.headersAt = Date.now();
    out.status = res.status;
    out.workerId = res.headers.get("x-smollm-worker-id") ?? undefined;
    out.retryAfter = res.headers.get("retry-after");
    options.onHeaders?.(res.status);
    const text = await res.text();
    out.endedAt = Date.now();
    if (res.status !== 200) {
      out.error = text;
      return out;
    }
    const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    out.done = events.at(-1) === "[DONE]";
    for (const e of events.slice(0, -1)) {
      const chunk = JSON.parse(e) as { usage?: { completion_tokens: number }; error?: { message: string } };
      if (chunk.error) out.error = chunk.error.message;
      if (chunk.usage) out.completionTokens = chunk.usage.completion_tokens;
    }
  } catch (error: unknown) {
    out.endedAt = Date.now();
    out.error = String(error);
  }
  return out;
}

const ok = (o: StreamOutcome, tokens: number): boolean => o.status === 200 && o.done && o.error === undefined && o.completionTokens === tokens;

/** Runs `promtool check metrics` on an exposition; returns its exit status and complaints. */
function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] ?? "", m[2] ?? "");
  return out;
}

// ------------------------------------------------------------------ observability and lifecycle

describe("observability and lifecycle (2 workers, rolling restarts under load)", () => {
  let cluster: LocalCluster;

  before(async () => {
    cluster = await startLocalCluster({
      workers: 2,
      privateRedis: true,
      logLevel: "info",
      workerArgs: () => ["--slots", "8", "--context-size", "1024", "--drain-timeout-ms", "30000"],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("every service's /metrics passes promtool check metrics and covers what operators watch", async () => {
    // Traffic first, so histograms and labelled counters have samples: streams, a whole answer, an error.
    await Promise.all([streamCompletion(cluster.gatewayUrl, 16), streamCompletion(cluster.gatewayUrl, 16)]);
    await fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    const bad = await fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "x".repeat(8_000) }], max_tokens: 4 }),
    });
    assert.equal(bad.status, 400, "a prompt longer than the context is refused");
    await sleep(1_100); // the scheduler's gauges refresh every second

    const expected: Record<string, Record<string, string>> = {
      gateway: {
        smollm_gateway_time_to_first_token_seconds: "histogram",
        smollm_gateway_inter_token_latency_seconds: "histogram",
        smollm_gateway_request_duration_seconds: "histogram",
        smollm_gateway_in_flight_requests: "gauge",
        smollm_gateway_requests_total: "counter",
        smollm_gateway_errors_total: "counter",
        smollm_gateway_retries_total: "counter",
        smollm_gateway_cached_prompt_tokens_total: "counter",
        smollm_gateway_rate_limited_total: "counter",
        smollm_gateway_auth_failures_total: "counter",
      },
      scheduler: {
        smollm_scheduler_routing_decisions_total: "counter",
        smollm_scheduler_routing_decision_seconds: "histogram",
        smollm_scheduler_prefix_hit_tokens_total: "counter",
        smollm_scheduler_kv_event_lag_seconds: "gauge",
        smollm_scheduler_kv_events_applied_total: "counter",
        smollm_scheduler_workers: "gauge",
        smollm_scheduler_errors_total: "counter",
      },
      worker: {
        smollm_worker_time_to_first_token_seconds: "histogram",
        smollm_worker_inter_token_latency_seconds: "histogram",
        smollm_worker_request_duration_seconds: "histogram",
        smollm_worker_queue_wait_seconds: "histogram",
        smollm_worker_prefill_duration_seconds: "histogram",
        smollm_worker_active_slots: "gauge",
        smollm_worker_queued_requests: "gauge",
        smollm_worker_kv_cells_used: "gauge",
        smollm_worker_kv_cache_usage_ratio: "gauge",
        smollm_worker_kv_cache_capacity_tokens: "gauge",
        smollm_worker_cached_prompt_tokens_total: "counter",
        smollm_worker_errors_total: "counter",
        smollm_worker_draining: "gauge",
      },
    };
    const targets: [string, string][] = [
      ["gateway", `${cluster.gatewayUrl}/metrics`],
      ["scheduler", `${opsUrl(cluster.scheduler)}/metrics`],
      ...cluster.workers.map((w): [string, string] => ["worker", `${opsUrl(w)}/metrics`]),
    ];
    for (const [service, url] of targets) {
      const text = await (await fetch(url)).text();
      const lint = promtool(text);
      assert.equal(lint.status, 0, `promtool check metrics on ${service} (${url}):\n${lint.output}`);
      assert.equal(lint.output, "", `promtool complained about ${service}`);
      const found = families(text);
      for (const [name, type] of Object.entries(expected[service] ?? {})) assert.equal(found.get(name), type, `${service}: ${name}`);
      // One naming scheme: everything is smollm_<service>_…, counters end in _total.
      for (const [name, type] of found) {
        assert.ok(name.startsWith(`smollm_${service}_`), `${service} exports ${name}`);
        assert.equal(type === "counter", name.endsWith("_total"), `${name} (${type})`);
      }
    }
    const gw = await scrape(`${cluster.gatewayUrl}/metrics`);
    assert.ok(metric(gw, "smollm_gateway_time_to_first_token_seconds_count") >= 3);
    assert.ok(metric(gw, "smollm_gateway_errors_total", { code: "context_length_exceeded" }) >= 1, "errors are counted by kind");
    const w0 = await scrape(`${opsUrl(cluster.workers[0] as ServiceProcess)}/metrics`);
    const usage = metric(w0, "smollm_worker_kv_cache_usage_ratio");
    assert.ok(usage > 0 && usage <= 1, `kv cache usage ratio ${usage}`);
    assert.equal(metric(w0, "smollm_worker_kv_cache_capacity_tokens"), 8 * 1024);
  });

  test("a request id follows a request through the gateway's, scheduler's and worker's JSON logs (HTTP and gRPC)", async () => {
    const httpId = `trace-http-${Date.now()}`;
    const res = await streamCompletion(cluster.gatewayUrl, 8, { headers: { "x-request-id": httpId } });
    assert.ok(ok(res, 8));
    const client = new SmolLMClient({ address: cluster.gatewayGrpcAddress });
    const grpcId = `trace-grpc-${Date.now()}`;
    const ttftCount = async () => metric(await scrape(`${cluster.gatewayUrl}/metrics`), "smollm_gateway_time_to_first_token_seconds_count");
    const ttftBefore = await ttftCount();
    try {
      await client.streamChatCompletion({ model: MODEL, messages: [{ role: "user", content: "hi" }], maxTokens: 8 }, { requestId: grpcId }).collect();
    } finally {
      client.close();
    }
    assert.equal(await ttftCount(), ttftBefore + 1, "gRPC streams are timed too");
    for (const id of [httpId, grpcId]) {
      const lines = (p: ServiceProcess) => p.logs.filter((l) => l["request_id"] === id);
      await until(`worker log lines of ${id}`, () => cluster.workers.some((w) => lines(w).length > 0), 3_000);
      const worker = cluster.workers.find((w) => lines(w).length > 0) as ServiceProcess;
      const scheduled = lines(cluster.scheduler).find((l) => l["msg"] === "routed");
      const generated = lines(worker).find((l) => l["msg"] === "generation finished");
      assert.ok(scheduled, `the scheduler logged the routing of ${id}`);
      assert.ok(generated, `the worker logged the generation of ${id}`);
      assert.equal(scheduled["worker_id"], generated["worker_id"]);
      for (const line of [scheduled, generated]) {
        for (const key of ["level", "time", "service", "msg"]) assert.ok(key in line, `${key} in ${JSON.stringify(line)}`);
      }
      if (id === httpId) {
        const served = lines(cluster.gateway).find((l) => l["msg"] === "chat completion");
        assert.equal(served?.["worker_id"], generated["worker_id"]);
        assert.equal(served?.["completion_tokens"], 8);
      }
    }
  });

  test("rolling restart of every worker under streaming load: no request lost, drained streams complete, exits 0", async () => {
    const TOKENS = 96;
    const outcomes: StreamOutcome[] = [];
    let loading = true;
    const loop = async (): Promise<void> => {
      while (loading) outcomes.push(await streamCompletion(cluster.gatewayUrl, TOKENS));
    };
    const redis = new Redis(cluster.redisUrl);
    const rounds: { worker: string; sigtermAt: number; drainingVisibleMs: number; exit: number | string; exitMs: number }[] = [];
    const loops = Array.from({ length: 6 }, loop);
    try {
      for (let round = 0; round < 2; round++) {
        await sleep(1_000);
        const victim = cluster.workers[round] as ServiceProcess;
        const id = String(victim.ready["worker_id"] ?? victim.label);
        // SIGTERM while it holds streams (what a drain must finish): on a
        // loaded machine a just-restarted peer can briefly take all the load.
        const victimOps = `http://127.0.0.1:${String(victim.ready["ops_port"])}/metrics`;
        await until(`${id} serving a stream`, async () => metric(await scrape(victimOps), "smollm_worker_active_slots") > 0, 15_000);
        const sigtermAt = Date.now();
        victim.signal("SIGTERM");
        const replacement = cluster.addWorker();
        let drainingVisibleMs = -1;
        while (Date.now() - sigtermAt < 3_000) {
          const raw = await redis.get(`${cluster.redisPrefix}worker:${id}`);
          if (raw === null || (JSON.parse(raw) as { draining: boolean }).draining) {
            drainingVisibleMs = Date.now() - sigtermAt;
            break;
          }
          await sleep(5);
        }
        const exit = await victim.exited;
        const exitMs = Date.now() - sigtermAt;
        await replacement;
        rounds.push({ worker: id, sigtermAt, drainingVisibleMs, exit, exitMs });
      }
      await sleep(1_000);
    } finally {
      loading = false;
      await Promise.all(loops);
      redis.disconnect();
    }
    const failed = outcomes.filter((o) => !ok(o, TOKENS));
    assert.deepEqual(failed, [], "every request of the load completed");
    assert.ok(outcomes.length >= 12, `only ${outcomes.length} requests ran`);
    for (const r of rounds) {
      assert.equal(r.exit, 0, `${r.worker} exit code`);
      assert.ok(r.drainingVisibleMs >= 0 && r.drainingVisibleMs < 500, `${r.worker} marked draining after ${r.drainingVisibleMs} ms`);
      // Streams that were on the worker when it got SIGTERM: they finished there (drain), successfully.
      const drained = outcomes.filter((o) => o.workerId === r.worker && o.startedAt < r.sigtermAt && (o.endedAt ?? 0) > r.sigtermAt);
      assert.ok(drained.length > 0, `${r.worker} had streams in flight at SIGTERM`);
      assert.ok(drained.every((o) => ok(o, TOKENS)));
      // Out of routing at once: the scheduler routed nothing to it later than a moment after SIGTERM.
      const late = cluster.scheduler.logs.filter(
        (l) => l["msg"] === "routed" && l["worker_id"] === r.worker && Date.parse(String(l["time"])) > r.sigtermAt + 250,
      );
      assert.deepEqual(late, [], `${r.worker} still received routings after SIGTERM`);
    }
    const gw = await scrape(`${cluster.gatewayUrl}/metrics`);
    console.log(
      `rolling restart: ${outcomes.length} streams, 0 failed; drain visible after ${rounds.map((r) => r.drainingVisibleMs).join("/")} ms, ` +
        `exit after ${rounds.map((r) => r.exitMs).join("/")} ms; gateway retries ${metric(gw, "smollm_gateway_retries_total")}`,
    );
  });

  test("SIGTERM to a gateway: readiness off at once, new requests 503, in-flight streams finish, exit 0", async () => {
    const g2 = await cluster.addGateway();
    const base = httpUrl(g2);
    let headers = 0;
    const streams = Array.from({ length: 3 }, () => streamCompletion(base, 160, { onHeaders: (status) => void (status === 200 && headers++) }));
    await until("3 streams to start", () => headers === 3, 20_000);
    const sigtermAt = Date.now();
    g2.signal("SIGTERM");
    await until("/readyz to say 503", async () => (await fetch(`${base}/readyz`)).status === 503, 1_000);
    const readyOffMs = Date.now() - sigtermAt;
    const refused = await streamCompletion(base, 8);
    assert.equal(refused.status, 503);
    assert.equal(refused.retryAfter, "1");
    const done = await Promise.all(streams);
    assert.ok(done.every((o) => ok(o, 160)), JSON.stringify(done));
    assert.ok(done.every((o) => (o.endedAt ?? 0) > sigtermAt));
    assert.equal(await g2.exited, 0);
    console.log(`gateway drain: readiness off after ${readyOffMs} ms, exit after ${Date.now() - sigtermAt} ms`);
  });

  test("SIGTERM to the scheduler: it exits 0 and a new one takes over", async () => {
    const old = cluster.scheduler;
    const t0 = Date.now();
    await cluster.restartScheduler("stop");
    assert.equal(await old.exited, 0);
    await until("requests to flow through the new scheduler", async () => ok(await streamCompletion(cluster.gatewayUrl, 8), 8), 20_000);
    console.log(`scheduler restart (SIGTERM, exit 0, new one serving) took ${Date.now() - t0} ms`);
  });
});
