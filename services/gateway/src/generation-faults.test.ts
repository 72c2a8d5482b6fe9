/**
 * The Generator's fault handling against fake gRPC services, fast enough for
 * every run (the integration suites in tests/ do the same with real
 * processes): a worker that never answers is given up after the ack timeout
 * and the request goes to another; routing is retried with backoff while the
 * scheduler is unreachable or has no worker yet; when every worker is full
 * the client hears 429, not "no worker available".
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { OverloadedError, UnavailableError, createLogger } from "@smollm/common";
import {
  FinishReason,
  SchedulerService,
  WorkerService,
  createClient,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type GenerateRequest,
  type GrpcServer,
  type RouteRequest,
} from "@smollm/proto";
import { freePort } from "@smollm/testkit";
import { Generator, type GenerationParams } from "./generation.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { WorkerPool } from "./worker-pool.ts";
import { WorkerEjections } from "./worker-ejections.ts";

type Mode = "ok" | "silent" | "full";

/** Generate calls each fake worker received, by id. */
const calls = new Map<string, number>();

async function fakeWorker(id: string, mode: () => Mode): Promise<GrpcServer> {
  return startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        generate: async function* (request: GenerateRequest, context) {
          calls.set(id, (calls.get(id) ?? 0) + 1);
          const m = mode();
          if (m === "silent") {
            // Hung: no headers, no message, until the caller gives up.
            await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
            return;
          }
          context.sendHeaders({ "x-smollm-worker-id": id });
          if (m === "full") throw new OverloadedError("all slots busy", { retryAfterMs: 1_000 });
          yield { event: { case: "started", value: { workerId: id, promptTokens: request.promptTokens.length } } };
          yield { event: { case: "delta", value: { text: `hi from ${id}`, tokens: 1 } } };
          yield { event: { case: "finished", value: { reason: FinishReason.STOP, usage: { promptTokens: 1, completionTokens: 1 } } } };
        },
        getStatus: async () => ({ workerId: id }),
      }),
    );
  });
}

async function fakeScheduler(
  port: number,
  route: (request: RouteRequest) => { id: string; port: number },
): Promise<GrpcServer> {
  return startGrpcServer({ host: "127.0.0.1", port }, (s) => {
    s.addService(
      serviceDefinition(SchedulerService),
      serviceImplementation(SchedulerService, {
        route: async (request) => {
          const w = route(request);
          return { workerId: w.id, workerAddress: `127.0.0.1:${w.port}`, promptTokens: [1, 2, 3], contextSize: 4096, outcome: "load" };
        },
      }),
    );
  });
}

const logger = createLogger({ service: "gateway", level: "silent" });
const params: GenerationParams = {
  requestId: "r1",
  prompt: "hello",
  maxTokens: 4,
  sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0 },
  stop: [],
  ignoreEos: false,
};
const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

function generator(schedulerPort: number, options: { ack?: number; routeRetryMs?: number; stall?: number; ejections?: WorkerEjections } = {}) {
  const metrics = createGatewayMetrics();
  const scheduler = createClient(SchedulerService, `127.0.0.1:${schedulerPort}`);
  const workers = new WorkerPool();
  cleanup.push(() => scheduler.close(), () => workers.close());
  const g = new Generator({
    scheduler,
    workers,
    metrics,
    logger,
    defaultMaxTokens: 16,
    maxRetries: 2,
    workerAckTimeoutMs: options.ack ?? 300,
    workerStallTimeoutMs: options.stall ?? 0,
    ...(options.ejections ? { ejections: options.ejections } : {}),
    routeTimeoutMs: 300,
    routeRetryMs: options.routeRetryMs ?? 3_000,
  });
  const run = async (onDelta: (text: string) => Promise<void> | undefined = () => undefined): Promise<string> => {
    let text = "";
    await g.run(
      params,
      {
        onStarted: () => {},
        onDelta: (t) => {
          text += t;
          return onDelta(t);
        },
      },
      { signal: new AbortController().signal, deadline: Date.now() + 10_000 },
    );
    return text;
  };
  return { run, metrics };
}

/** A worker that streams `deltas` texts, then goes silent (hangs) or pauses `pauseMs` before finishing. */
async function stallingWorker(deltas: number, pauseMs: number | "forever", cancelled: { at?: number }): Promise<GrpcServer> {
  return startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        generate: async function* (_request, context) {
          context.signal.addEventListener("abort", () => (cancelled.at = Date.now()), { once: true });
          context.sendHeaders({});
          for (let i = 0; i < deltas; i++) yield { event: { case: "delta", value: { text: `t${i} `, tokens: 1 } } };
          if (pauseMs === "forever") await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
          else await sleep(pauseMs);
          yield { event: { case: "finished", value: { reason: FinishReason.STOP, usage: { promptTokens: 1, completionTokens: deltas } } } };
        },
        getStatus: async () => ({}),
      }),
    );
  });
}

test("a worker that never answers is given up after the ack timeout; the request is served by another", async () => {
  const hung = await fakeWorker("hung", () => "silent");
  const good = await fakeWorker("good", () => "ok");
  const port = await freePort();
  const scheduler = await fakeScheduler(port, (r) => (r.excludeWorkers.includes("hung") ? { id: "good", port: good.port } : { id: "hung", port: hung.port }));
  cleanup.push(() => hung.close(100), () => good.close(100), () => scheduler.close(100));
  const { run, metrics } = generator(port);
  const started = Date.now();
  assert.equal(await run(), "hi from good");
  const ms = Date.now() - started;
  assert.ok(ms >= 280 && ms < 3_000, `took ${ms} ms`);
  assert.equal(calls.get("hung"), 1);
  assert.match(await metrics.registry.metrics(), /smollm_gateway_retries_total\{code="unavailable",service="gateway"\} 1/);
});

test("a busy worker (headers sent, no slot yet) is not mistaken for a hung one", async () => {
  const slow = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        generate: async function* (_request, context) {
          context.sendHeaders({});
          await sleep(800); // queued for a slot, longer than the ack timeout
          yield { event: { case: "delta", value: { text: "late but fine", tokens: 1 } } };
          yield { event: { case: "finished", value: { reason: FinishReason.STOP } } };
        },
        getStatus: async () => ({}),
      }),
    );
  });
  const port = await freePort();
  const scheduler = await fakeScheduler(port, () => ({ id: "slow", port: slow.port }));
  cleanup.push(() => slow.close(100), () => scheduler.close(100));
  const { run } = generator(port);
  assert.equal(await run(), "late but fine");
});

test("routing is retried with backoff while the scheduler is down, and succeeds once it is up", async () => {
  const good = await fakeWorker("good", () => "ok");
  const port = await freePort();
  cleanup.push(() => good.close(100));
  const { run } = generator(port);
  const result = run();
  await sleep(700); // nothing listens yet: connection refused, retried
  const scheduler = await fakeScheduler(port, () => ({ id: "good", port: good.port }));
  cleanup.push(() => scheduler.close(100));
  assert.equal(await result, "hi from good");
});

test("a scheduler with no worker yet is retried; past the budget the error is a clean UNAVAILABLE", async () => {
  const good = await fakeWorker("good", () => "ok");
  let refusals = 2;
  const port = await freePort();
  const scheduler = await startGrpcServer({ host: "127.0.0.1", port }, (s) => {
    s.addService(
      serviceDefinition(SchedulerService),
      serviceImplementation(SchedulerService, {
        route: async () => {
          if (refusals-- > 0) throw new UnavailableError("no worker is registered", { retryAfterMs: 1_000 });
          return { workerId: "good", workerAddress: `127.0.0.1:${good.port}`, promptTokens: [1], contextSize: 4096, outcome: "load" };
        },
      }),
    );
  });
  cleanup.push(() => good.close(100), () => scheduler.close(100));
  assert.equal(await generator(port).run(), "hi from good");
  refusals = 1_000;
  const started = Date.now();
  await assert.rejects(generator(port, { routeRetryMs: 600 }).run(), (e: unknown) => e instanceof UnavailableError || (e as { code?: string }).code === "unavailable");
  assert.ok(Date.now() - started < 2_000);
});

test("every worker full: the client hears resource_exhausted (429), not that no worker is available", async () => {
  const a = await fakeWorker("a", () => "full");
  const b = await fakeWorker("b", () => "full");
  const port = await freePort();
  const scheduler = await startGrpcServer({ host: "127.0.0.1", port }, (s) => {
    s.addService(
      serviceDefinition(SchedulerService),
      serviceImplementation(SchedulerService, {
        route: async (request) => {
          const w = [{ id: "a", port: a.port }, { id: "b", port: b.port }].find((x) => !request.excludeWorkers.includes(x.id));
          if (w === undefined) throw new UnavailableError("no worker is available (all draining or failed)");
          return { workerId: w.id, workerAddress: `127.0.0.1:${w.port}`, promptTokens: [1], contextSize: 4096, outcome: "load" };
        },
      }),
    );
  });
  cleanup.push(() => a.close(100), () => b.close(100), () => scheduler.close(100));
  await assert.rejects(generator(port).run(), (e: unknown) => (e as { code?: string }).code === "resource_exhausted");
});

test("a worker that goes silent mid-stream fails the stream as UNAVAILABLE after the stall timeout, keeping the text, and the call is cancelled", async () => {
  const cancelled: { at?: number } = {};
  const hung = await stallingWorker(3, "forever", cancelled);
  const port = await freePort();
  const scheduler = await fakeScheduler(port, () => ({ id: "hung", port: hung.port }));
  cleanup.push(() => hung.close(100), () => scheduler.close(100));
  const { run, metrics } = generator(port, { stall: 400 });
  let text = "";
  const started = Date.now();
  await assert.rejects(
    run((t) => void (text += t)),
    (e: unknown) => (e as { code?: string }).code === "unavailable" && /nothing for 400 ms/.test(String((e as Error).message)),
  );
  const ms = Date.now() - started;
  assert.equal(text, "t0 t1 t2 ", "the text streamed before the stall reached the sink");
  assert.ok(ms >= 380 && ms < 3_000, `failed after ${ms} ms`);
  await sleep(100);
  assert.ok(cancelled.at !== undefined, "the worker's call was cancelled (its slot freed)");
  assert.match(await metrics.registry.metrics(), /smollm_gateway_worker_stalls_total\{service="gateway"\} 1/);
});

test("the stall timeout counts only the worker's silence: a slow client or a pause shorter than the timeout is fine", async () => {
  const cancelled: { at?: number } = {};
  const worker = await stallingWorker(3, 200, cancelled);
  const port = await freePort();
  const scheduler = await fakeScheduler(port, () => ({ id: "w", port: worker.port }));
  cleanup.push(() => worker.close(100), () => scheduler.close(100));
  const { run } = generator(port, { stall: 400 });
  // Each delta waits 500 ms for the "client": longer than the stall timeout, not the worker's fault.
  assert.equal(await run(() => sleep(500)), "t0 t1 t2 ");
  assert.equal(cancelled.at, undefined);
});

test("a worker this gateway could not reach is ejected: later requests avoid it (no ack timeout each), and it is used again when its time is up", async () => {
  const hung = await fakeWorker("ejected", () => "silent");
  const good = await fakeWorker("healthy", () => "ok");
  const port = await freePort();
  const avoided: string[][] = [];
  // Prefers "ejected" (as a load scorer might), honours exclusions and, softly, avoidance.
  const scheduler = await fakeScheduler(port, (r) => {
    avoided.push(r.avoidWorkers);
    const skip = new Set([...r.excludeWorkers, ...r.avoidWorkers]);
    return skip.has("ejected") ? { id: "healthy", port: good.port } : { id: "ejected", port: hung.port };
  });
  cleanup.push(() => hung.close(100), () => good.close(100), () => scheduler.close(100));
  const ejections = new WorkerEjections(1_500);
  const { run, metrics } = generator(port, { ejections });
  const callsBefore = calls.get("ejected") ?? 0;
  assert.equal(await run(), "hi from healthy");
  assert.deepEqual(ejections.active(), ["ejected"]);
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) assert.equal(await run(), "hi from healthy");
  assert.ok(Date.now() - t0 < 1_000, "no ack timeout paid while it is ejected");
  assert.equal((calls.get("ejected") ?? 0) - callsBefore, 1, "only the first request tried it");
  assert.deepEqual(avoided.slice(-5), Array.from({ length: 5 }, () => ["ejected"]));
  assert.match(await metrics.registry.metrics(), /smollm_gateway_worker_ejections_total\{service="gateway"\} 1/);
  await sleep(1_600);
  assert.deepEqual(ejections.active(), []);
  assert.equal(await run(), "hi from healthy");
  assert.equal((calls.get("ejected") ?? 0) - callsBefore, 2, "tried again once the ejection expired");
});
