import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startLocalCluster, type LocalCluster } from "./local-cluster.ts";
import type { ServiceProcess } from "./service-process.ts";
import { runLoad, type LoadSummary } from "./load-client.ts";
import { RssSampler, type RssSample, type RssTrend } from "./proc-stats.ts";
import { metricSum, scrapeMetrics } from "./prometheus-text.ts";

const MiB = 2 ** 20;

/** One phase of a soak: a closed-loop load of `concurrency` streaming clients. */
export interface SoakPhase {
  name: string;
  concurrency: number;
  /** Requests to send at most. */
  total: number;
  /** No request is started after this long. */
  timeLimitMs: number;
  /** Completion tokens per request (ignore_eos: every request generates exactly this many). */
  maxTokens: number;
  /** `no_errors`: below saturation, every request must succeed; `shed`: above it, failures may only be clean 429/503. */
  expect: "no_errors" | "shed";
  /** A client pauses this long (jittered) after a 429/503 before its next request; default 0. */
  pauseAfterShedMs?: number;
}

/** The cluster a soak runs against. */
export interface SoakClusterOptions {
  workers: number;
  slots: number;
  maxQueue: number;
  contextSize: number;
  /** A worker gives up on a queued request after this long (RESOURCE_EXHAUSTED); default the worker's (30 s). */
  queueTimeoutMs?: number;
}

/** What one phase measured. */
export interface SoakPhaseResult {
  phase: SoakPhase;
  summary: Omit<LoadSummary, "results">;
  /** Answers that were neither a success nor a clean 429/503 (in a `shed` phase), or any failure (in a `no_errors` phase). */
  unexpected: Record<string, number>;
  /** No conclusive outcome: a hang past the client's deadline, or a stream that ended without [DONE] or an error event. */
  lost: number;
  /** Generations the workers completed minus the successes clients saw (a request generated twice). */
  duplicated: number;
  /** Requests the gateway counted minus requests sent (each must be counted once). */
  gatewayCountDelta: number;
  /** Requests moved to another worker before their first token. */
  retries: number;
  /** Most requests queued on one worker, and in flight on the gateway, over the samples taken each 500 ms. */
  maxQueuedPerWorker: number;
  maxGatewayInFlight: number;
  /** After the phase: slots in use plus queued requests over every worker (0 = nothing leaked). */
  busyAfter: number;
  /** 429/503 answers that carried a Retry-After header, of all 429/503 answers. */
  shedWithRetryAfter: number;
  shed: number;
}

/**
 * What a process's memory did over the longest steady phase. RSS alone
 * misleads under load (V8 grows its heap to fit the traffic and returns it
 * late), so the live heap is reported too: the lowest heap-used reading
 * (right after a collection) of the phase's second half against its first.
 */
export interface MemoryTrend extends RssTrend {
  /** Lowest V8 heap used, MiB, in the first and second half of the window; NaN for processes without one (Redis). */
  heapLiveEarlyMiB: number;
  heapLiveLateMiB: number;
  heapLiveGrowthMiB: number;
}

/**
 * Memory of a process at rest, after the first phase and after the last:
 * its live heap (V8 heap used right after a full collection, forced by a heap
 * snapshot: an idle heap otherwise keeps the garbage of the last burst for
 * minutes) and its mean RSS over a few idle seconds. Compared, they say
 * whether the run left anything behind.
 */
export interface IdleMemory {
  label: string;
  heapAfterWarmupMiB: number;
  heapAtEndMiB: number;
  rssAfterWarmupMiB: number;
  rssAtEndMiB: number;
}

/** A soak's whole outcome. */
export interface SoakReport {
  /** Memory at rest after the first phase and after the last (see IdleMemory). */
  idle: IdleMemory[];
  cluster: SoakClusterOptions;
  phases: SoakPhaseResult[];
  /** Memory over the longest no-error phase (`memoryWindow`). */
  memory: MemoryTrend[];
  memoryWindow: { phase: string; fromMs: number; toMs: number };
  rssSamples: RssSample[];
  durationMs: number;
}

/**
 * Runs phases of streaming load against a fresh local cluster (loopback
 * only), checking every answer, the workers' and the gateway's own counts,
 * queue depths and the RSS of every process. Bounded: each phase by count
 * and time, each request by a client deadline.
 */
export async function runSoak(
  clusterOptions: SoakClusterOptions,
  phases: readonly SoakPhase[],
  options: { log?: (line: string) => void; rssIntervalMs?: number; requestTimeoutMs?: number; idleMs?: number } = {},
): Promise<SoakReport> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  // A heap snapshot begins with a full collection: SIGUSR2 (Node's
  // --heapsnapshot-signal) is how the soak reads each process's live heap
  // without changing the services. The snapshots go to a scratch folder and
  // are deleted at once.
  const snapshotDir = mkdtempSync(join(tmpdir(), "smollm-soak-heap-"));
  const nodeOptions = process.env["NODE_OPTIONS"];
  process.env["NODE_OPTIONS"] = `${nodeOptions ?? ""} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshotDir}`.trim();
  const cluster: LocalCluster = await startLocalCluster({
    workers: clusterOptions.workers,
    privateRedis: true,
    workerArgs: () => [
      "--slots", String(clusterOptions.slots),
      "--max-queue", String(clusterOptions.maxQueue),
      "--context-size", String(clusterOptions.contextSize),
      ...(clusterOptions.queueTimeoutMs === undefined ? [] : ["--queue-timeout-ms", String(clusterOptions.queueTimeoutMs)]),
    ],
  });
  if (nodeOptions === undefined) delete process.env["NODE_OPTIONS"];
  else process.env["NODE_OPTIONS"] = nodeOptions;
  const opsUrls = cluster.workers.map((w) => `http://127.0.0.1:${String(w.ready["ops_port"])}/metrics`);
  const gatewayMetrics = `${cluster.gatewayUrl}/metrics`;
  // Every Node process's own metrics: V8 heap used, for the live-heap trend.
  const heapSources: [string, string][] = [
    ["gateway", gatewayMetrics],
    ["scheduler", `http://127.0.0.1:${String(cluster.scheduler.ready["ops_port"])}/metrics`],
    ...cluster.workers.map((w, i): [string, string] => [w.label, opsUrls[i] as string]),
  ];
  const heapSamples: { atMs: number; label: string; bytes: number }[] = [];
  const windows: { phase: SoakPhase; fromMs: number; toMs: number }[] = [];
  const pids: Record<string, number> = {
    gateway: cluster.gateway.pid,
    scheduler: cluster.scheduler.pid,
    ...Object.fromEntries(cluster.workers.map((w) => [w.label, w.pid])),
  };
  if (cluster.redis && cluster.redis.pid > 0) pids["redis"] = cluster.redis.pid;
  const sampler = new RssSampler(pids, options.rssIntervalMs ?? 1_000);
  const workerTotals = async (): Promise<{ completed: number; busy: number }> => {
    let completed = 0;
    let busy = 0;
    for (const u of opsUrls) {
      const m = await scrapeMetrics(u);
      completed += metricSum(m, "smollm_worker_requests_total", { finish_reason: "stop" }) + metricSum(m, "smollm_worker_requests_total", { finish_reason: "length" });
      busy += metricSum(m, "smollm_worker_active_slots") + metricSum(m, "smollm_worker_queued_requests");
    }
    return { completed, busy };
  };
  /** Lowest heap used and mean RSS per process over `ms` of idleness. */
  const processes = new Map<string, ServiceProcess>([
    ["gateway", cluster.gateway],
    ["scheduler", cluster.scheduler],
    ...cluster.workers.map((w): [string, ServiceProcess] => [w.label, w]),
  ]);
  /** Live heap of one process: a heap snapshot (a full collection first), then its heap-used gauge. */
  const liveHeapMiB = async (label: string, url: string): Promise<number> => {
    const p = processes.get(label);
    if (p === undefined) return NaN;
    const mine = (): string[] => readdirSync(snapshotDir).filter((f) => f.includes(`.${p.pid}.`));
    const before = mine().length;
    p.signal("SIGUSR2");
    // Written when its size stops changing (or given up after 60 s).
    let lastSize = -1;
    for (let i = 0; i < 300; i++) {
      await sleep(200);
      const files = mine();
      if (files.length <= before) continue;
      const size = statSync(join(snapshotDir, files[files.length - 1] as string)).size;
      if (size > 0 && size === lastSize) break;
      lastSize = size;
    }
    for (const f of mine()) rmSync(join(snapshotDir, f), { force: true });
    const service = label.startsWith("worker") ? "worker" : label;
    return metricSum(await scrapeMetrics(url), `smollm_${service}_nodejs_heap_size_used_bytes`) / MiB;
  };
  /** The live heap of every Node process, then their mean RSS over `ms` of idleness (after those collections). */
  const atRest = async (ms: number): Promise<Map<string, { heap: number; rss: number }>> => {
    const heaps = new Map<string, number>();
    for (const [label, url] of heapSources) heaps.set(label, await liveHeapMiB(label, url));
    const from = sampler.elapsedMs;
    await sleep(ms);
    sampler.sample();
    const out = new Map<string, { heap: number; rss: number }>();
    const samples = sampler.samples.filter((x) => x.atMs >= from);
    for (const label of Object.keys(pids)) {
      const rss = samples.map((x) => x.rss[label]).filter((v): v is number => v !== undefined);
      out.set(label, { heap: heaps.get(label) ?? NaN, rss: rss.length === 0 ? NaN : rss.reduce((a, b) => a + b, 0) / rss.length / MiB });
    }
    return out;
  };
  const results: SoakPhaseResult[] = [];
  let restAfterWarmup: Map<string, { heap: number; rss: number }> | undefined;
  let restAtEnd: Map<string, { heap: number; rss: number }> | undefined;
  try {
    for (const phase of phases) {
      const before = await workerTotals();
      const gatewayBefore = await scrapeMetrics(gatewayMetrics);
      let maxQueued = 0;
      let maxInFlight = 0;
      let polling = true;
      const fromMs = sampler.elapsedMs;
      const poller = (async () => {
        while (polling) {
          try {
            for (const [label, u] of heapSources) {
              const m = await scrapeMetrics(u);
              if (label.startsWith("worker")) maxQueued = Math.max(maxQueued, metricSum(m, "smollm_worker_queued_requests"));
              if (label === "gateway") maxInFlight = Math.max(maxInFlight, metricSum(m, "smollm_gateway_in_flight_requests"));
              const service = label.startsWith("worker") ? "worker" : label;
              heapSamples.push({ atMs: sampler.elapsedMs, label, bytes: metricSum(m, `smollm_${service}_nodejs_heap_size_used_bytes`) });
            }
          } catch {
            // A scrape racing the end of the run.
          }
          await sleep(500);
        }
      })();
      log(`phase ${phase.name}: ${phase.total} requests, ${phase.concurrency} concurrent streams, ${phase.maxTokens} tokens each`);
      let done = 0;
      const summary = await runLoad({
        baseUrl: cluster.gatewayUrl,
        total: phase.total,
        concurrency: phase.concurrency,
        timeLimitMs: phase.timeLimitMs,
        requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
        pauseAfterShedMs: phase.pauseAfterShedMs ?? 0,
        requestId: (seq) => `soak-${phase.name}-${seq}`,
        body: (seq) => ({
          model: "SmolLM3-3B",
          messages: [
            { role: "system", content: "/system_override Be brief." },
            { role: "user", content: `${phase.name} ${seq}: tell me something.` },
          ],
          max_tokens: phase.maxTokens,
          stream: true,
          stream_options: { include_usage: true },
          ignore_eos: true,
        }),
        onResult: () => {
          if (++done % 1_000 === 0) log(`  ${phase.name}: ${done} answered`);
        },
      });
      polling = false;
      await poller;
      windows.push({ phase, fromMs, toMs: sampler.elapsedMs });
      // Every request is answered; a slot is released a moment after its last token.
      let after = await workerTotals();
      for (let i = 0; i < 50 && after.busy > 0; i++) {
        await sleep(100);
        after = await workerTotals();
      }
      const gatewayAfter = await scrapeMetrics(gatewayMetrics);
      const unexpected: Record<string, number> = {};
      let lost = 0;
      let shed = 0;
      let shedWithRetryAfter = 0;
      for (const r of summary.results) {
        if (r.outcome === "ok") {
          // Every success is whole: the exact token count asked for.
          if (r.completionTokens !== phase.maxTokens) unexpected[`ok with ${String(r.completionTokens)} tokens`] = (unexpected[`ok with ${String(r.completionTokens)} tokens`] ?? 0) + 1;
          continue;
        }
        if (r.outcome === "timeout" || (r.outcome === "closed" && r.errorCode === "TRUNCATED")) lost++;
        const isShed = r.outcome === "http_error" && (r.status === 429 || r.status === 503);
        if (isShed) {
          shed++;
          if (r.retryAfter !== undefined) shedWithRetryAfter++;
        }
        if (phase.expect === "no_errors" || !isShed) {
          const key = `${r.outcome}:${r.status}:${r.errorCode ?? "?"}`;
          unexpected[key] = (unexpected[key] ?? 0) + 1;
        }
      }
      const { results: _drop, ...rest } = summary;
      void _drop;
      const gatewayCounted = metricSum(gatewayAfter, "smollm_gateway_requests_total") - metricSum(gatewayBefore, "smollm_gateway_requests_total");
      const result: SoakPhaseResult = {
        phase,
        summary: rest,
        unexpected,
        lost,
        duplicated: after.completed - before.completed - summary.ok,
        gatewayCountDelta: gatewayCounted - summary.sent,
        retries: metricSum(gatewayAfter, "smollm_gateway_retries_total") - metricSum(gatewayBefore, "smollm_gateway_retries_total"),
        maxQueuedPerWorker: maxQueued,
        maxGatewayInFlight: maxInFlight,
        busyAfter: after.busy,
        shed,
        shedWithRetryAfter,
      };
      results.push(result);
      log(
        `  ${phase.name}: sent ${summary.sent}, ok ${summary.ok}, ${JSON.stringify(summary.byError)}, lost ${lost}, duplicated ${result.duplicated}, ` +
          `${summary.requestsPerS.toFixed(1)} req/s, p50 ${summary.latencyMs.p50.toFixed(0)} ms, p99 ${summary.latencyMs.p99.toFixed(0)} ms, ` +
          `max queued/worker ${maxQueued}, busy after ${after.busy}`,
      );
      if (results.length === 1 || results.length === phases.length) {
        const rest = await atRest(options.idleMs ?? 3_000);
        if (results.length === 1) restAfterWarmup = rest;
        if (results.length === phases.length) restAtEnd = rest;
      }
    }
  } finally {
    sampler.stop();
    await cluster.stop();
    rmSync(snapshotDir, { recursive: true, force: true });
  }
  // The longest phase that must not fail is the steady state memory is judged on.
  const steady = windows
    .filter((w) => w.phase.expect === "no_errors")
    .reduce<(typeof windows)[number] | undefined>((a, b) => (a === undefined || b.toMs - b.fromMs > a.toMs - a.fromMs ? b : a), undefined);
  const window = steady ?? { phase: phases[0] as SoakPhase, fromMs: 0, toMs: Infinity };
  const middle = (window.fromMs + window.toMs) / 2;
  const liveHeap = (label: string, from: number, to: number): number => {
    const xs = heapSamples.filter((h) => h.label === label && h.atMs >= from && h.atMs < to && h.bytes > 0).map((h) => h.bytes);
    return xs.length === 0 ? NaN : Math.min(...xs) / MiB;
  };
  const memory: MemoryTrend[] = sampler.trends(0.2, { fromMs: window.fromMs, toMs: window.toMs }).map((t) => {
    const early = liveHeap(t.label, window.fromMs, middle);
    const late = liveHeap(t.label, middle, window.toMs);
    return { ...t, heapLiveEarlyMiB: early, heapLiveLateMiB: late, heapLiveGrowthMiB: late - early };
  });
  const idle: IdleMemory[] = Object.keys(pids).map((label) => ({
    label,
    heapAfterWarmupMiB: restAfterWarmup?.get(label)?.heap ?? NaN,
    heapAtEndMiB: restAtEnd?.get(label)?.heap ?? NaN,
    rssAfterWarmupMiB: restAfterWarmup?.get(label)?.rss ?? NaN,
    rssAtEndMiB: restAtEnd?.get(label)?.rss ?? NaN,
  }));
  return {
    cluster: clusterOptions,
    phases: results,
    idle,
    memory,
    memoryWindow: { phase: window.phase.name, fromMs: window.fromMs, toMs: window.toMs },
    rssSamples: sampler.samples,
    durationMs: Date.now() - started,
  };
}
