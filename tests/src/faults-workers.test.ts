/**
 * Fault suite, part 1: workers and the gateway failing under real traffic.
 * Real processes throughout (redis-server, scheduler, three node-llama-cpp
 * workers on the tiny model, gateways), real signals (SIGKILL, SIGSTOP,
 * SIGCONT). Each case asserts what clients saw and that the cluster recovered
 * by itself, and records its figures for `npm run bench:reliability`.
 *
 * Defaults are kept where they set the recovery times measured here:
 * heartbeats every second, a registration expires after 3 s.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, Metadata, credentials, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { publicApi } from "@smollm/proto";
import { chatCompletion, rssBytes, startLocalCluster, type ChatResult, type LocalCluster, type ServiceProcess } from "@smollm/testkit";
import {
  alive,
  busySlots,
  chatBody,
  gatewayMetric,
  gatewayUrlOf,
  grpcStream,
  readyWorkers,
  startGateway,
  stopExtraGateways,
  timeUntil,
  workerSum,
} from "./fault-helpers.ts";
import { addFailure, recordCase, tally } from "./reliability-record.ts";

const SUITE = "worker and gateway faults";
const WORKERS = 3;
let cluster: LocalCluster;
let url: string;
const nonce = Math.random().toString(36).slice(2, 8);

before(async () => {
  cluster = await startLocalCluster({
    workers: WORKERS,
    privateRedis: true,
    workerArgs: () => ["--slots", "8", "--context-size", "2048"],
    // A hung worker is given up quickly by the shared gateway too.
    gatewayArgs: ["--worker-ack-timeout-ms", "1500"],
  });
  url = cluster.gatewayUrl;
});
after(async () => {
  await stopExtraGateways();
  await cluster?.stop();
});

const workerNamed = (id: string | undefined): ServiceProcess => {
  const w = cluster.workers.find((p) => p.label === id && alive(p));
  assert.ok(w, `no live worker named ${id}`);
  return w;
};

/**
 * Brings the cluster back to WORKERS live, routed workers after a case killed
 * some. The dead must have left routing first: until their registrations
 * expire they still count as routed, and "WORKERS routed" would hold too early.
 */
async function restoreWorkers(killed: readonly ServiceProcess[]): Promise<void> {
  await Promise.all(killed.map((w) => w.exited));
  const live = cluster.workers.filter(alive).length;
  await timeUntil("the killed workers to leave routing", async () => (await readyWorkers(cluster)) === live, 15_000);
  await Promise.all(Array.from({ length: WORKERS - live }, () => cluster.addWorker()));
  await timeUntil("every worker routed", async () => (await readyWorkers(cluster)) === WORKERS, 15_000);
}

/** A promise with its resolver, for "act when the stream has N deltas". */
function signal<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("fault suite: workers and gateways", () => {
  test("a worker SIGKILLed before its first token: its requests are retried on another worker and all succeed", async () => {
    const victim = cluster.workers.find(alive);
    assert.ok(victim);
    const retriesBefore = await gatewayMetric(cluster.gateway, "smollm_gateway_retries_total");
    // Stopped first, so the requests routed to it are certainly waiting for
    // their first token when it dies (a live tiny model answers in ms).
    victim.signal("SIGSTOP");
    const pending = Array.from({ length: 9 }, (_, i) =>
      chatCompletion(url, chatBody(`${nonce} kill-before ${i}: say something`), { requestId: `kill-before-${i}`, timeoutMs: 30_000 }),
    );
    await sleep(500); // routed and sent, well inside the 1.5 s ack timeout
    const killedAt = Date.now();
    victim.signal("SIGKILL");
    const results = await Promise.all(pending);
    const answeredMs = Date.now() - killedAt;
    await timeUntil("the dead worker to leave routing", async () => (await readyWorkers(cluster)) === WORKERS - 1);
    const leftMs = Date.now() - killedAt;
    const retries = (await gatewayMetric(cluster.gateway, "smollm_gateway_retries_total")) - retriesBefore;
    const t = tally(results);
    recordCase({
      suite: SUITE,
      case: "worker SIGKILL before its first token (HTTP)",
      ...t,
      recoveryMs: leftMs,
      expected: "retried on another worker, 200",
      notes: `${retries} retries; every request answered ${answeredMs} ms after the kill; the dead worker left routing ${leftMs} ms after it (registration expiry)`,
    });
    assert.deepEqual(
      results.filter((r) => r.outcome !== "ok").map((r) => `${r.requestId}: ${r.outcome} ${r.errorCode ?? ""} ${r.errorMessage ?? ""}`),
      [],
    );
    for (const r of results) assert.equal(r.completionTokens, 8, r.requestId);
    assert.ok(retries >= 1, "no request was routed to the killed worker: the case proved nothing");
    for (const r of results) assert.notEqual(r.workerId, victim.label);
    await restoreWorkers([victim]);
  });

  test("a worker SIGKILLed after tokens streamed: SSE error event and gRPC UNAVAILABLE, partial text kept, no hang", async () => {
    const httpReady = signal<string>();
    const grpcReady = signal<string>();
    let httpWorkerSeen: string | undefined;
    let httpAtThird = false;
    const http = chatCompletion(url, chatBody(`${nonce} a long story`, { maxTokens: 1500 }), {
      requestId: "kill-after-http",
      timeoutMs: 60_000,
      onDelta: (_text, r) => {
        httpWorkerSeen ??= r.workerId;
        if (r.deltas === 3) {
          httpAtThird = true;
          httpReady.resolve(r.workerId ?? "");
        }
      },
    });
    // The public proto has no ignore_eos: the worker is stopped at the 3rd
    // message, so the stream cannot end by itself before the kill; unless the
    // HTTP stream shares that worker and has not had its 3rd delta yet (it
    // would never get it): then the kill follows within a few tokens.
    const grpc = grpcStream(cluster.gatewayGrpcAddress, `${nonce} another long story`, {
      maxTokens: 1500,
      onMessage: (r) => {
        if (r.messages === 3 && r.finishReason === "") {
          if (httpAtThird || (httpWorkerSeen !== undefined && r.workerId !== httpWorkerSeen)) workerNamed(r.workerId).signal("SIGSTOP");
          grpcReady.resolve(r.workerId);
        }
      },
    });
    const [httpWorker, grpcWorker] = await Promise.all([httpReady.promise, grpcReady.promise]);
    const victims = [...new Set([httpWorker, grpcWorker])].map(workerNamed);
    const killedAt = Date.now();
    for (const v of victims) v.signal("SIGKILL");
    const [h, g] = await Promise.all([http, grpc]);
    const answeredMs = Date.now() - killedAt;

    const t = tally([h]);
    if (g.errorCode === undefined) t.succeeded++;
    else addFailure(t.failed, `gRPC ${g.errorCode.toUpperCase()}${g.text.length > 0 ? ", partial text kept" : ""}`);
    t.sent++;
    recordCase({
      suite: SUITE,
      case: "worker SIGKILL after tokens streamed (HTTP SSE + gRPC stream)",
      ...t,
      recoveryMs: answeredMs,
      expected: "error event / UNAVAILABLE, partial text kept",
      notes: `clients told ${answeredMs} ms after the kill; HTTP kept ${h.deltas} deltas, gRPC ${g.messages} messages`,
    });
    assert.equal(h.outcome, "stream_error", `${h.outcome} ${h.errorCode} ${h.errorMessage}`);
    assert.equal(h.errorCode, "unavailable");
    assert.ok(h.deltas >= 3 && h.text.length > 0, "the text streamed before the failure is kept");
    assert.equal(g.errorCode, "unavailable", `${g.errorCode} ${g.errorMessage}`);
    assert.ok(g.messages >= 3 && g.text.length > 0);
    assert.ok(answeredMs < 5_000, `clients learnt of the failure after ${answeredMs} ms`);
    await restoreWorkers(victims);
  });

  test("a hung worker (SIGSTOP): its stream times out per the request deadline, new requests go elsewhere, it leaves routing and rejoins after SIGCONT", async () => {
    // A gateway with short deadlines: 6 s per request, 1 s for a worker to take a call.
    // Ejections shortened so the resumed worker is tried again within the case.
    const gateway = await startGateway(cluster, ["--request-timeout-ms", "6000", "--worker-ack-timeout-ms", "1000", "--worker-eject-ms", "1000"]);
    try {
      const gwUrl = gatewayUrlOf(gateway);
      const ready = signal<string>();
      const long = chatCompletion(gwUrl, chatBody(`${nonce} hang`, { maxTokens: 1800 }), {
        requestId: "hang-stream",
        timeoutMs: 30_000,
        onDelta: (_text, r) => {
          if (r.deltas === 3) ready.resolve(r.workerId ?? "");
        },
      });
      const victim = workerNamed(await ready.promise);
      victim.signal("SIGSTOP");
      // Watched from now on, beside the traffic below.
      const left = timeUntil("the hung worker to leave routing", async () => (await readyWorkers(cluster)) === WORKERS - 1, 15_000, 100);
      // New requests at once: some are routed to the hung worker (still registered).
      const during = await Promise.all(
        Array.from({ length: 9 }, (_, i) =>
          chatCompletion(gwUrl, chatBody(`${nonce} during the hang ${i}`), { requestId: `hang-new-${i}`, timeoutMs: 30_000 }),
        ),
      );
      const stream = await long;
      const leftMs = await left;
      victim.signal("SIGCONT");
      const rejoinMs = await timeUntil("the worker to rejoin routing", async () => (await readyWorkers(cluster)) === WORKERS).catch((error: unknown) => {
        // Say what the worker did (its warnings) and what the scheduler saw.
        const tail = (p: ServiceProcess): string => p.logs.slice(-8).map((l) => JSON.stringify(l)).join("\n");
        throw new Error(`${String(error)}; ${victim.label} exit ${String(victim.child.exitCode ?? victim.child.signalCode)}\n${tail(victim)}\nscheduler:\n${tail(cluster.scheduler)}`);
      });
      // It serves again, and the calls given up while it was stopped left no slot behind.
      const slotsMs = await timeUntil("slots freed everywhere", async () => (await busySlots(cluster.workers)) === 0, 10_000);
      let servedByVictim = false;
      const after: ChatResult[] = [];
      for (let i = 0; i < 30 && !servedByVictim; i++) {
        const batch = await Promise.all(
          Array.from({ length: 3 }, (_, j) => chatCompletion(gwUrl, chatBody(`${nonce} after ${i}.${j}`), { requestId: `hang-after-${i}-${j}` })),
        );
        after.push(...batch);
        servedByVictim = batch.some((r) => r.outcome === "ok" && r.workerId === victim.label);
      }
      const t = tally([stream, ...during]);
      recordCase({
        suite: SUITE,
        case: "worker hung (SIGSTOP) with a stream open, then SIGCONT",
        ...t,
        recoveryMs: rejoinMs,
        expected: "open stream: SSE deadline_exceeded at the 6 s deadline; new requests: 200 via another worker",
        notes: `left routing ${leftMs} ms after SIGSTOP, rejoined ${rejoinMs} ms after SIGCONT, slots 0 after ${slotsMs} ms more; ${after.filter((r) => r.outcome === "ok").length}/${after.length} ok after`,
      });
      assert.equal(stream.outcome, "stream_error", `${stream.outcome} ${stream.errorCode}`);
      assert.equal(stream.errorCode, "deadline_exceeded");
      assert.ok(stream.text.length > 0, "partial text kept");
      assert.ok(stream.ms >= 5_500 && stream.ms < 9_000, `timed out after ${Math.round(stream.ms)} ms, the deadline is 6000`);
      assert.deepEqual(during.filter((r) => r.outcome !== "ok").map((r) => `${r.requestId}: ${r.outcome} ${r.errorCode}`), []);
      for (const r of during) assert.notEqual(r.workerId, victim.label);
      assert.ok(leftMs < 6_000, `left routing after ${leftMs} ms`);
      assert.ok(servedByVictim, "the resumed worker never served again");
      assert.ok(after.every((r) => r.outcome === "ok"));
    } finally {
      await gateway.stop();
    }
  });

  test("a worker hung mid-stream: with --worker-stall-timeout-ms the stream fails as unavailable long before the deadline, partial text kept; the worker frees the slot after SIGCONT", async () => {
    const gateway = await startGateway(cluster, ["--worker-stall-timeout-ms", "1500"]);
    try {
      const ready = signal<string>();
      const cancelledBefore = await workerSum(cluster.workers, "smollm_worker_requests_total", { finish_reason: "cancelled" });
      const stream = chatCompletion(gatewayUrlOf(gateway), chatBody(`${nonce} stall mid-stream`, { maxTokens: 1800 }), {
        requestId: "stall-mid-stream",
        timeoutMs: 30_000,
        onDelta: (_text, r) => {
          if (r.deltas === 3) {
            // Stopped from inside the delta handler: the stream is certainly mid-way.
            workerNamed(r.workerId).signal("SIGSTOP");
            ready.resolve(r.workerId ?? "");
          }
        },
      });
      const victim = workerNamed(await ready.promise);
      const stoppedAt = Date.now();
      const result = await stream;
      const toldMs = Date.now() - stoppedAt;
      await sleep(Math.max(0, 2_200 - toldMs)); // hung a little longer, inside the 3 s registration TTL
      victim.signal("SIGCONT");
      const freedMs = await timeUntil("the resumed worker to free the slot", async () => (await busySlots(cluster.workers)) === 0, 10_000);
      const cancelled = (await workerSum(cluster.workers, "smollm_worker_requests_total", { finish_reason: "cancelled" })) - cancelledBefore;
      const stalls = await gatewayMetric(gateway, "smollm_gateway_worker_stalls_total");
      const t = tally([result]);
      recordCase({
        suite: SUITE,
        case: "worker hung mid-stream, gateway with --worker-stall-timeout-ms 1500",
        ...t,
        recoveryMs: freedMs,
        expected: "SSE error unavailable after ~1.5 s (not the 10 min deadline), partial text kept; slot freed after SIGCONT",
        notes: `client told ${toldMs} ms after SIGSTOP with ${result.deltas} deltas kept; the worker freed the slot ${freedMs} ms after SIGCONT (${cancelled} generation cancelled)`,
      });
      assert.equal(result.outcome, "stream_error", `${result.outcome} ${result.errorCode} ${result.errorMessage}`);
      assert.equal(result.errorCode, "unavailable");
      assert.ok(result.deltas >= 3 && result.text.length > 0, "partial text kept");
      assert.ok(toldMs >= 1_300 && toldMs < 5_000, `client told after ${toldMs} ms, the stall timeout is 1500`);
      assert.equal(stalls, 1);
      assert.ok(cancelled >= 1, "the worker did not cancel the abandoned generation");
    } finally {
      await gateway.stop();
    }
  });

  test("a gateway SIGKILLed with streams open: clients see a closed connection, workers free the slots", async () => {
    const gateway = await startGateway(cluster, []);
    const gwUrl = gatewayUrlOf(gateway);
    const streams = 6;
    let started = 0;
    const allStarted = signal<void>();
    const t0 = Date.now();
    const startedAt: string[] = [];
    const settled = new Set<number>();
    const pending = Array.from({ length: streams }, (_, i) =>
      chatCompletion(gwUrl, chatBody(`${nonce} gateway dies ${i}`, { maxTokens: 1500 }), {
        requestId: `gw-kill-${i}`,
        timeoutMs: 30_000,
        onDelta: (_t, r) => {
          if (r.deltas === 2) {
            startedAt.push(`${i}@${r.workerId ?? "?"}+${Date.now() - t0}ms`);
            if (++started === streams) allStarted.resolve();
          }
        },
      }).finally(() => settled.add(i)),
    );
    await allStarted.promise;
    // A stream that started late (a routing retry, a loaded machine) can find
    // the first ones already finished: those must have ended cleanly, and the
    // case needs at least one open stream to mean anything.
    const active = await workerSum(cluster.workers, "smollm_worker_active_slots");
    const retries = await gatewayMetric(gateway, "smollm_gateway_retries_total");
    const why = (): string =>
      `${active} slots active, ${retries} retries; streams started: ${startedAt.join(", ")}; gateway: ${gateway.logs.slice(-6).map((l) => JSON.stringify(l)).join(" ")}`;
    const openAtKill = new Set(Array.from({ length: streams }, (_, i) => i).filter((i) => !settled.has(i)));
    const killedAt = Date.now();
    gateway.signal("SIGKILL");
    const results = await Promise.all(pending);
    const seenMs = Date.now() - killedAt;
    const freedMs = await timeUntil("the workers to free the dead gateway's slots", async () => (await busySlots(cluster.workers)) === 0, 10_000);
    const ok = await chatCompletion(url, chatBody(`${nonce} the other gateway`), { requestId: "gw-kill-other" });
    const t = tally(results);
    recordCase({
      suite: SUITE,
      case: "gateway SIGKILL with streams open",
      ...t,
      recoveryMs: freedMs,
      expected: "closed connection (incomplete chunked body), slots freed",
      notes: `${openAtKill.size} of ${streams} streams open at the kill; clients saw the close within ${seenMs} ms; workers freed every slot ${freedMs} ms after the kill; the other gateway served on`,
    });
    assert.ok(openAtKill.size >= 1, `no stream was open at the kill: ${why()}`);
    results.forEach((r, i) => {
      if (openAtKill.has(i)) {
        assert.equal(r.outcome, "closed", `${r.requestId}: ${r.outcome} ${r.errorCode}; ${why()}`);
        assert.notEqual(r.errorCode, "TRUNCATED", "a cut stream must not look complete");
        assert.ok(r.text.length > 0);
      } else {
        assert.equal(r.outcome, "ok", `${r.requestId} ended before the kill: ${r.outcome} ${r.errorCode}`);
      }
    });
    assert.ok(freedMs < 5_000, `slots freed after ${freedMs} ms`);
    assert.equal(ok.outcome, "ok");
  });

  test("slow clients that stop reading: memory stays bounded, other clients are unaffected, abandoned gRPC streams are cancelled", async () => {
    // HTTP: TCP on loopback buffers megabytes per connection before the
    // gateway's writes block, more than these completions produce, so the
    // gateway's stall cancellation is proven by its unit test with fake
    // workers; here, that paused readers cost the processes nothing. gRPC:
    // HTTP/2 flow control (a 1 KiB window) blocks the gateway at once, so a
    // paused client is cancelled after the stall timeout, freeing its slot.
    const gateway = await startGateway(cluster, ["--write-stall-timeout-ms", "1500"]);
    const gwUrl = gatewayUrlOf(gateway);
    const rssBefore = { gateway: rssBytes(gateway.pid) ?? 0, workers: cluster.workers.filter(alive).map((w) => rssBytes(w.pid) ?? 0) };
    const cancelledBefore = await workerSum(cluster.workers, "smollm_worker_requests_total", { finish_reason: "cancelled" });
    const httpSlow = 12;
    const grpcSlow = 6;
    const paused: Promise<ChatResult>[] = [];
    const responses: IncomingMessage[] = [];
    for (let i = 0; i < httpSlow; i++) {
      paused.push(
        chatCompletion(gwUrl, chatBody(`${nonce} slow reader ${i}`, { maxTokens: 600 }), {
          requestId: `slow-http-${i}`,
          timeoutMs: 60_000,
          onResponse: (res) => {
            res.pause(); // reads nothing until resumed at the end
            responses.push(res);
          },
        }),
      );
    }
    const grpcClient = new Client(`127.0.0.1:${String(gateway.ready["grpc_port"])}`, credentials.createInsecure(), {
      "grpc-node.flow_control_window": 1024,
    });
    const grpcCalls: ClientReadableStream<unknown>[] = [];
    const grpcErrors: Promise<ServiceError | undefined>[] = [];
    for (let i = 0; i < grpcSlow; i++) {
      const request = create(publicApi.StreamChatCompletionRequestSchema, {
        params: {
          model: "SmolLM3-3B",
          messages: [{ role: "system", content: "/system_override Be brief." }, { role: "user", content: `${nonce} slow gRPC reader ${i}` }],
          maxTokens: 1500,
          temperature: 0, // greedy decoding of the tiny model never samples an end token: a long stream
        },
      });
      const call = grpcClient.makeServerStreamRequest(
        "/smollm.v1.ChatService/StreamChatCompletion",
        (m: typeof request) => Buffer.from(toBinary(publicApi.StreamChatCompletionRequestSchema, m)),
        (b: Buffer) => fromBinary(publicApi.StreamChatCompletionResponseSchema, b),
        request,
        new Metadata(),
        {},
      );
      call.once("data", () => call.pause());
      grpcErrors.push(new Promise((resolve) => {
        call.on("error", (e: ServiceError) => resolve(e));
        call.on("end", () => resolve(undefined));
      }));
      grpcCalls.push(call);
    }
    // Meanwhile, an ordinary client is served as usual.
    const normal: ChatResult[] = [];
    for (let i = 0; i < 6; i++) normal.push(await chatCompletion(gwUrl, chatBody(`${nonce} normal ${i}`), { requestId: `slow-normal-${i}` }));
    await sleep(3_000); // past the 1.5 s stall timeout
    const cancelled = (await workerSum(cluster.workers, "smollm_worker_requests_total", { finish_reason: "cancelled" })) - cancelledBefore;
    const slotsFreedMs = await timeUntil("slots freed with the readers still paused", async () => (await busySlots(cluster.workers)) === 0, 20_000);
    const rssAfter = { gateway: rssBytes(gateway.pid) ?? 0, workers: cluster.workers.filter(alive).map((w) => rssBytes(w.pid) ?? 0) };
    const gatewayGrowthMiB = (rssAfter.gateway - rssBefore.gateway) / 2 ** 20;
    const workerGrowthMiB = Math.max(...rssAfter.workers.map((v, i) => (v - (rssBefore.workers[i] ?? v)) / 2 ** 20));
    // The readers resume: the gRPC ones learn they were cancelled; the HTTP
    // ones read their whole completion, held meanwhile by the kernel's buffers.
    for (const call of grpcCalls) call.resume();
    const grpcOutcomes = await Promise.all(grpcErrors);
    for (const res of responses) res.resume();
    const httpOutcomes = await Promise.all(paused);
    grpcClient.close();
    await gateway.stop();
    const t = tally([...normal, ...httpOutcomes]);
    t.sent += grpcSlow;
    const grpcCancelled = grpcOutcomes.filter((e) => e?.code === 1).length;
    addFailure(t.failed, "paused gRPC reader cancelled after the 1.5 s stall (CANCELLED)", grpcCancelled);
    t.succeeded += grpcOutcomes.filter((e) => e === undefined).length;
    recordCase({
      suite: SUITE,
      case: "slow clients that stop reading (12 HTTP, 6 gRPC) beside 6 normal requests",
      ...t,
      recoveryMs: slotsFreedMs,
      expected: "bounded memory; paused gRPC streams cancelled; others unaffected",
      notes: `gateway RSS +${gatewayGrowthMiB.toFixed(1)} MiB, worker RSS +${workerGrowthMiB.toFixed(1)} MiB at most; ${cancelled} worker generations cancelled by the stall (the others had already finished on the worker)`,
    });
    assert.equal(responses.length, httpSlow);
    assert.deepEqual([...normal, ...httpOutcomes].filter((r) => r.outcome !== "ok").map((r) => `${r.requestId} ${r.outcome}`), []);
    assert.ok(gatewayGrowthMiB < 64, `gateway RSS grew ${gatewayGrowthMiB.toFixed(1)} MiB`);
    assert.ok(workerGrowthMiB < 64, `worker RSS grew ${workerGrowthMiB.toFixed(1)} MiB`);
    // A stream that ended (end token) before the gateway blocked is not cancelled; most are long.
    assert.ok(grpcCancelled >= 1, `no paused gRPC stream was cancelled (${grpcOutcomes.map((e) => e?.code).join(",")})`);
    // The workers themselves may have finished those generations first: a
    // worker keeps decoding into its outbox (bounded by max_tokens) while the
    // gateway waits on the client; either way every slot came back (above).
  });
});
