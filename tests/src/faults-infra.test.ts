/**
 * Fault suite, part 2: the scheduler, Redis and the network between the
 * services, each failing while clients keep sending. Real processes and a
 * real redis-server; network faults come from TCP proxies (testkit's
 * `startTcpProxy`) put between the gateway and the scheduler, and between the
 * gateway and one worker (advertised at the proxy's address).
 *
 * The gateway here gives a silent scheduler 1 s per routing attempt and keeps
 * retrying routing for 30 s; a worker must take a call within 1.5 s.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { chatCompletion, freePort, startLocalCluster, startTcpProxy, type ChatResult, type LocalCluster, type TcpProxy } from "@smollm/testkit";
import { metric } from "./helpers.ts";
import {
  busySlots,
  chatBody,
  gatewayMetric,
  gatewayUrlOf,
  opsMetrics,
  readyWorkers,
  slowest,
  startGateway,
  startTraffic,
  stopExtraGateways,
  timeUntil,
} from "./fault-helpers.ts";
import { recordCase, tally } from "./reliability-record.ts";

const INFRA = "infrastructure faults";
const NETWORK = "network faults";
let cluster: LocalCluster;
let schedulerLink: TcpProxy;
let workerLink: TcpProxy;
let url: string;
const nonce = Math.random().toString(36).slice(2, 8);
/** worker-0 is reached through `workerLink`. */
const PROXIED = "worker-0";
/** The gateway's `--worker-eject-ms`. */
const EJECT_MS = 2_000;

before(async () => {
  const schedulerPort = await freePort();
  const workerPort = await freePort();
  schedulerLink = await startTcpProxy({ port: schedulerPort });
  workerLink = await startTcpProxy({ port: workerPort });
  cluster = await startLocalCluster({
    workers: 2,
    privateRedis: true,
    schedulerArgs: ["--grpc-port", String(schedulerPort)],
    workerArgs: (i) => [
      "--slots", "8", "--context-size", "2048",
      ...(i === 0 ? ["--grpc-port", String(workerPort), "--advertise-address", workerLink.address] : []),
    ],
    gatewayArgs: [
      "--scheduler-address", schedulerLink.address,
      // Routing retries outlast a scheduler restart on a loaded machine.
      "--route-timeout-ms", "1000", "--route-retry-ms", "30000", "--worker-ack-timeout-ms", "1500",
      // A worker it cannot reach is avoided for 2 s (outlier ejection).
      "--worker-eject-ms", String(EJECT_MS),
    ],
  });
  url = cluster.gatewayUrl;
});
after(async () => {
  await stopExtraGateways();
  await cluster?.stop();
  await schedulerLink?.close();
  await workerLink?.close();
});

const schedulerMetric = async (name: string, labels: Record<string, string> = {}): Promise<number> =>
  metric(await opsMetrics(cluster.scheduler), name, labels);

const failures = (results: readonly ChatResult[]): string[] =>
  results.filter((r) => r.outcome !== "ok").map((r) => `${r.requestId}: ${r.outcome} ${r.errorCode ?? ""} ${r.errorMessage ?? ""}`);

/** Two turns of a conversation; the second reports how many prompt tokens the worker had cached. */
async function secondTurnCached(topic: string): Promise<number> {
  const body = (messages: { role: string; content: string }[]) => ({
    model: "SmolLM3-3B",
    messages,
    max_tokens: 8,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const messages = [
    { role: "system", content: `/no_think You answer questions about ${topic}. Be brief, precise and friendly.` },
    { role: "user", content: `Tell me one fact about ${topic}.` },
  ];
  const first = await chatCompletion(url, body(messages), { requestId: `turn1-${topic.replaceAll(" ", "-")}` });
  assert.equal(first.outcome, "ok");
  await sleep(300); // the worker's cache events are batched
  messages.push({ role: "assistant", content: first.text }, { role: "user", content: "And another one?" });
  let cached = 0;
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body(messages), stream: false }),
  });
  cached = Number(res.headers.get("x-smollm-cached-tokens") ?? 0);
  await res.arrayBuffer();
  return cached;
}

describe("fault suite: scheduler and Redis", () => {
  test("the scheduler SIGKILLed and restarted under traffic: requests wait for it (routing retries), open streams go on, none lost", async () => {
    const streams = Array.from({ length: 3 }, (_, i) =>
      chatCompletion(url, chatBody(`${nonce} open stream ${i}`, { maxTokens: 500 }), { requestId: `sched-stream-${i}`, timeoutMs: 60_000 }),
    );
    const traffic = startTraffic(url, { prefix: `${nonce}-sched`, concurrency: 6, max: 1_500 });
    await sleep(1_000);
    const killedAt = Date.now();
    await cluster.restartScheduler("kill");
    const restartMs = Date.now() - killedAt;
    await sleep(1_500);
    const results = await traffic.stop();
    const open = await Promise.all(streams);
    const t = tally([...results, ...open]);
    recordCase({
      suite: INFRA,
      case: "scheduler SIGKILL + restart under traffic (6 clients, 3 open streams)",
      ...t,
      recoveryMs: restartMs,
      expected: "requests wait (route retry with backoff), 200; open streams unaffected",
      notes: `new scheduler ready ${restartMs} ms after the kill; slowest request ${Math.round(slowest(results))} ms`,
    });
    assert.deepEqual(failures([...results, ...open]), []);
    assert.ok(results.length > 20, `${results.length} requests`);
    assert.ok(slowest(results) > restartMs / 2, "no request was in flight across the restart: the case proved nothing");
  });

  test("Redis stopped under traffic, then restarted: serving goes on (load-only routing), the registry and cache index rebuild", async () => {
    const redis = cluster.redis;
    assert.ok(redis);
    const traffic = startTraffic(url, { prefix: `${nonce}-redis`, concurrency: 6, max: 1_500 });
    await sleep(500);
    await redis.stop();
    await timeUntil("the index to be marked unhealthy", async () => (await schedulerMetric("smollm_scheduler_kv_index_healthy")) === 0, 10_000);
    await sleep(2_000); // longer than a registration's TTL: Redis comes back empty
    await redis.restart();
    const recoveryMs = await timeUntil(
      "workers re-registered and the index rebuilt",
      async () =>
        (await schedulerMetric("smollm_scheduler_kv_index_healthy")) === 1 &&
        (await schedulerMetric("smollm_scheduler_registry_stale")) === 0 &&
        (await readyWorkers(cluster)) === 2 &&
        (await schedulerMetric("smollm_scheduler_kv_index_blocks")) > 0,
      20_000,
    );
    await sleep(500);
    const results = await traffic.stop();
    const cached = await secondTurnCached(`${nonce} the Rhône`);
    const t = tally(results);
    recordCase({
      suite: INFRA,
      case: "Redis stopped ~3 s under traffic, then restarted empty",
      ...t,
      recoveryMs,
      expected: "200 throughout; index rebuilt, prefix routing back",
      notes: `registry and KV index rebuilt ${recoveryMs} ms after the restart; a second turn then had ${cached} cached prompt tokens`,
    });
    assert.deepEqual(failures(results), []);
    assert.ok(cached > 0, "prefix routing did not come back");
  });

  test("Redis flushed under traffic: serving goes on, workers re-register and republish, the cache index rebuilds", async () => {
    const traffic = startTraffic(url, { prefix: `${nonce}-flush`, concurrency: 6, max: 1_500 });
    await sleep(500);
    const admin = new Redis(cluster.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    await admin.flushall();
    await sleep(200);
    const recoveryMs = (await timeUntil(
      "workers re-registered and the index rebuilt",
      async () =>
        (await readyWorkers(cluster)) === 2 &&
        (await schedulerMetric("smollm_scheduler_kv_index_healthy")) === 1 &&
        (await schedulerMetric("smollm_scheduler_kv_index_blocks")) > 0 &&
        (await admin.dbsize()) > 0,
      20_000,
    )) + 200;
    admin.disconnect();
    await sleep(500);
    const results = await traffic.stop();
    const cached = await secondTurnCached(`${nonce} the Garonne`);
    const t = tally(results);
    recordCase({
      suite: INFRA,
      case: "Redis FLUSHALL under traffic",
      ...t,
      recoveryMs,
      expected: "200 throughout; registry and index rebuilt",
      notes: `registry and KV index back ${recoveryMs} ms after the flush; a second turn then had ${cached} cached prompt tokens`,
    });
    assert.deepEqual(failures(results), []);
    assert.ok(cached > 0, "prefix routing did not come back");
  });

  test("Redis hung (SIGSTOP) under traffic, longer than a registration's TTL: serving goes on, everything recovers after SIGCONT", async () => {
    // A hung Redis accepts connections and answers nothing: every command
    // waits for the clients' 2 s command timeout. When it resumes, the
    // registrations it holds have expired by its own clock: the registry must
    // come back from the workers' next heartbeats, not stay empty.
    const redis = cluster.redis;
    assert.ok(redis);
    const traffic = startTraffic(url, { prefix: `${nonce}-rhang`, concurrency: 6, max: 1_500 });
    await sleep(500);
    redis.pause();
    await sleep(4_000);
    redis.resume();
    const resumedAt = Date.now();
    const recoveryMs = await timeUntil(
      "workers registered and the index healthy again",
      async () =>
        (await schedulerMetric("smollm_scheduler_kv_index_healthy")) === 1 &&
        (await schedulerMetric("smollm_scheduler_registry_stale")) === 0 &&
        (await readyWorkers(cluster)) === 2,
      20_000,
    );
    await sleep(1_000);
    const results = await traffic.stop();
    const cached = await secondTurnCached(`${nonce} the Loire`);
    const t = tally(results);
    recordCase({
      suite: INFRA,
      case: "Redis hung (SIGSTOP) 4 s under traffic, then SIGCONT",
      ...t,
      recoveryMs,
      expected: "200 throughout (commands time out after 2 s); registry and index healthy after",
      notes: `registry and index healthy ${recoveryMs} ms after SIGCONT (${Date.now() - resumedAt} ms incl. the tail of traffic); slowest request ${Math.round(slowest(results))} ms; a second turn then had ${cached} cached prompt tokens`,
    });
    assert.deepEqual(failures(results), []);
    assert.ok(results.length > 20, `${results.length} requests`);
    assert.ok(cached > 0, "prefix routing did not come back");
  });
});

describe("fault suite: network faults between services", () => {
  test("gateway→scheduler connections reset for 1.5 s: routing retries with backoff, none lost", async () => {
    const traffic = startTraffic(url, { prefix: `${nonce}-sreset`, concurrency: 6, max: 1_500 });
    await sleep(500);
    const retriesLogged = (): number => cluster.gateway.logs.filter((l) => l["msg"] === "routing failed, retrying").length;
    const before = retriesLogged();
    schedulerLink.mode = "reset";
    schedulerLink.resetAll();
    await sleep(1_500);
    schedulerLink.mode = "forward";
    const recoveryMs = await timeUntil("a request routed again", async () => {
      const r = await chatCompletion(url, chatBody(`${nonce} probe`), { requestId: `sreset-probe-${Date.now()}` });
      return r.outcome === "ok";
    });
    const results = await traffic.stop();
    const t = tally(results);
    recordCase({
      suite: NETWORK,
      case: "gateway→scheduler TCP resets for 1.5 s",
      ...t,
      recoveryMs,
      expected: "requests wait (route retry with backoff), 200",
      notes: `${retriesLogged() - before} routing retries logged; slowest request ${Math.round(slowest(results))} ms; routing worked again ${recoveryMs} ms after the link came back`,
    });
    assert.deepEqual(failures(results), []);
    assert.ok(retriesLogged() > before, "no routing call failed: the case proved nothing");
  });

  test("the scheduler's port accepts and never answers: short silences are ridden out, a long one ends in a clean 503, never a hang", async () => {
    // 2 s of silence: inside the 8 s routing retry budget.
    const traffic = startTraffic(url, { prefix: `${nonce}-sblack`, concurrency: 6, max: 1_500 });
    await sleep(500);
    schedulerLink.mode = "blackhole";
    schedulerLink.resetAll(); // the gateway reconnects, into the black hole
    await sleep(2_000);
    schedulerLink.mode = "forward";
    schedulerLink.resetAll(); // and again, to the scheduler
    await sleep(1_000);
    const short = await traffic.stop();
    // Silence longer than the routing budget, through a gateway that retries routing for 4 s.
    const gateway = await startGateway(cluster, ["--route-timeout-ms", "1000", "--route-retry-ms", "4000"], schedulerLink.address);
    schedulerLink.mode = "blackhole";
    schedulerLink.resetAll();
    const long = await chatCompletion(gatewayUrlOf(gateway), chatBody(`${nonce} into the void`), { requestId: "sblack-long", timeoutMs: 30_000 });
    await gateway.stop();
    schedulerLink.mode = "forward";
    schedulerLink.resetAll();
    const recoveryMs = await timeUntil("a request routed again", async () => {
      const r = await chatCompletion(url, chatBody(`${nonce} probe`), { requestId: `sblack-probe-${Date.now()}` });
      return r.outcome === "ok";
    });
    const t1 = tally(short);
    recordCase({
      suite: NETWORK,
      case: "scheduler port black-holed 2 s under traffic",
      ...t1,
      recoveryMs: undefined,
      expected: "requests wait (1 s route deadline, retries with backoff), 200",
      notes: `slowest request ${Math.round(slowest(short))} ms`,
    });
    const t2 = tally([long]);
    recordCase({
      suite: NETWORK,
      case: "scheduler port black-holed longer than the routing budget (4 s)",
      ...t2,
      recoveryMs,
      expected: "HTTP 503 after the 4 s budget with Retry-After, never a hang",
      notes: `answered ${long.status} after ${Math.round(long.ms)} ms: "${long.errorMessage ?? ""}"`,
    });
    assert.deepEqual(failures(short), []);
    assert.equal(long.outcome, "http_error");
    assert.equal(long.status, 503);
    assert.match(long.errorMessage ?? "", /scheduler did not answer/);
    assert.ok(long.retryAfter !== undefined);
    assert.ok(long.ms > 3_000 && long.ms < 8_000, `answered after ${Math.round(long.ms)} ms`);
  });

  test("gateway→worker connection reset mid-stream: SSE error with the partial text; streams on other workers finish", async () => {
    const streams = 6;
    let started = 0;
    let onLink = 0;
    let ready!: () => void;
    const enough = new Promise<void>((r) => (ready = r));
    const startedAt = performance.now();
    const pending = Array.from({ length: streams }, (_, i) =>
      chatCompletion(url, chatBody(`${nonce} reset mid-stream ${i}`, { maxTokens: 1500 }), {
        requestId: `wreset-${i}`,
        timeoutMs: 60_000,
        onDelta: (_t, r) => {
          if (r.deltas !== 2) return;
          started++;
          if (r.workerId === PROXIED) onLink++;
          // Every stream going, or (a slow start) one on the link and 3 s passed.
          if (started === streams || (onLink > 0 && performance.now() - startedAt > 3_000)) ready();
        },
      }),
    );
    const fallback = setInterval(() => {
      if (onLink > 0 && performance.now() - startedAt > 3_000) ready();
    }, 100);
    await enough;
    clearInterval(fallback);
    const resetAt = performance.now();
    const n = workerLink.resetAll();
    const results = await Promise.all(pending);
    const freedMs = await timeUntil("the reset streams' slots freed", async () => (await busySlots(cluster.workers)) === 0, 15_000);
    // A stream that had already ended before the reset is not part of the case.
    const running = results.filter((r) => startedAt + r.ms > resetAt);
    const onProxied = running.filter((r) => r.workerId === PROXIED);
    const t = tally(results);
    recordCase({
      suite: NETWORK,
      case: "gateway→worker TCP reset mid-stream (6 streams)",
      ...t,
      recoveryMs: freedMs,
      expected: "streams on that link: SSE error unavailable, partial kept; others 200",
      notes: `${n} sockets reset, ${onProxied.length} streams were on the link; the worker freed their slots ${freedMs} ms after the streams ended`,
    });
    assert.ok(onProxied.length >= 1, "no stream ran over the proxied link: the case proved nothing");
    for (const r of results) {
      if (r.workerId === PROXIED && running.includes(r)) {
        assert.equal(r.outcome, "stream_error", `${r.requestId}: ${r.outcome} ${r.errorCode}`);
        assert.equal(r.errorCode, "unavailable");
        assert.ok(r.text.length > 0);
      } else {
        assert.equal(r.outcome, "ok", `${r.requestId}: ${r.outcome} ${r.errorCode}`);
      }
    }
  });

  test("gateway→worker link refusing or black-holed before the first token: requests go to the other worker, none lost; the gateway ejects the unreachable worker", async () => {
    const retries = async (code: string): Promise<number> => gatewayMetric(cluster.gateway, "smollm_gateway_retries_total", { code });
    const ejections = async (): Promise<number> => gatewayMetric(cluster.gateway, "smollm_gateway_worker_ejections_total");
    const wave = (tag: string): Promise<ChatResult[]> =>
      Promise.all(
        Array.from({ length: 8 }, (_, i) => chatCompletion(url, chatBody(`${nonce} ${tag} ${i}`), { requestId: `w${tag}-${i}`, timeoutMs: 30_000 })),
      );
    // An earlier case may have left the proxied worker ejected.
    await sleep(EJECT_MS + 100);
    const before = await retries("unavailable");
    const ejectedBefore = await ejections();
    workerLink.mode = "reset";
    workerLink.resetAll();
    const refused = await wave("refused");
    const afterReset = await retries("unavailable");
    // At once again: the worker is ejected, so no request tries it.
    const t0 = Date.now();
    const avoided = await wave("avoided");
    const avoidedMs = Date.now() - t0;
    const afterAvoided = await retries("unavailable");
    const ejectedAfterReset = (await ejections()) - ejectedBefore;
    await sleep(EJECT_MS + 100); // the ejection expires: the next requests try it again
    workerLink.mode = "blackhole";
    workerLink.resetAll();
    const silent = await wave("silent");
    const afterBlackhole = await retries("unavailable");
    workerLink.mode = "forward";
    workerLink.resetAll();
    const linkBackAt = Date.now();
    // The link is back: the worker behind it serves again (once its ejection is over).
    const recoveryMs = await timeUntil(
      "the proxied worker to serve again",
      async () => {
        const batch = await Promise.all(
          Array.from({ length: 4 }, (_, i) => chatCompletion(url, chatBody(`${nonce} back ${Date.now()} ${i}`), { requestId: `wback-${Date.now()}-${i}` })),
        );
        return batch.some((r) => r.outcome === "ok" && r.workerId === PROXIED);
      },
      20_000,
      200,
    );
    recordCase({
      suite: NETWORK,
      case: "gateway→worker link resets every connection (8 requests, then 8 more at once)",
      ...tally([...refused, ...avoided]),
      expected: "retried on the other worker, 200; then the worker ejected: no retry",
      notes: `${afterReset - before} retries in the first 8; the worker ejected (${ejectedAfterReset}), the next 8 had ${afterAvoided - afterReset} retries and took ${avoidedMs} ms`,
    });
    recordCase({
      suite: NETWORK,
      case: "gateway→worker link accepts and never answers (8 requests)",
      ...tally(silent),
      recoveryMs,
      expected: "1.5 s ack timeout, retried on the other worker, 200",
      notes: `${afterBlackhole - afterAvoided} retries; slowest ${Math.round(slowest(silent))} ms; the worker served again ${recoveryMs} ms after the link came back (its 2 s ejection included)`,
    });
    assert.deepEqual(failures([...refused, ...avoided, ...silent]), []);
    for (const r of [...refused, ...avoided, ...silent]) assert.notEqual(r.workerId, PROXIED);
    assert.ok(afterReset > before, "no request was routed over the refusing link: the case proved nothing");
    assert.ok(ejectedAfterReset >= 1, "the unreachable worker was not ejected");
    assert.equal(afterAvoided, afterReset, "requests still tried the ejected worker");
    assert.ok(afterBlackhole > afterAvoided, "no request was routed over the silent link: the case proved nothing");
    assert.ok(Date.now() - linkBackAt < 20_000);
  });
});
