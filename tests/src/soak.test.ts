/**
 * A bounded soak in the test suite (the 20 000-request one is
 * `npm run bench:soak`): 2 000 streaming requests at 200 concurrent against
 * three workers of the tiny model, below saturation (3 × (16 slots + 64
 * queued) = 240 ≥ 200): none lost, none duplicated, none failed. Then 800
 * concurrent, above it: failures are only clean 429/503 with Retry-After,
 * queues never exceed their bound. Then the cluster serves normally again,
 * with no slot left busy, and no process's memory grew.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSoak, type SoakPhaseResult } from "@smollm/testkit";
import { recordCase } from "./reliability-record.ts";

const MAX_QUEUE = 64;

function row(r: SoakPhaseResult, expected: string, notes: string): void {
  const failed: Record<string, number> = {};
  for (const [k, n] of Object.entries(r.summary.byError)) failed[k] = n;
  recordCase({
    suite: "load (tests)",
    case: `${r.phase.name}: ${r.phase.concurrency} concurrent streams, ${r.summary.sent} requests, ${r.phase.maxTokens} tokens each`,
    sent: r.summary.sent,
    succeeded: r.summary.ok,
    failed,
    lost: r.lost,
    expected,
    notes: `${notes}; ${r.summary.requestsPerS.toFixed(0)} req/s, p50 ${r.summary.latencyMs.p50.toFixed(0)} ms, p99 ${r.summary.latencyMs.p99.toFixed(0)} ms; duplicated ${r.duplicated}; max queued/worker ${r.maxQueuedPerWorker}; ${r.retries} retries`,
  });
}

test("soak: 2 000 requests at 200 concurrent streams, then overload, then recovery", { timeout: 170_000 }, async () => {
  const report = await runSoak(
    { workers: 3, slots: 16, maxQueue: MAX_QUEUE, contextSize: 512 },
    [
      { name: "steady", concurrency: 200, total: 2_000, timeLimitMs: 90_000, maxTokens: 8, expect: "no_errors" },
      // Far above the 240 a retry to another worker could still find room for.
      { name: "overload", concurrency: 800, total: 1_600, timeLimitMs: 40_000, maxTokens: 8, expect: "shed", pauseAfterShedMs: 200 },
      { name: "recovery", concurrency: 20, total: 100, timeLimitMs: 20_000, maxTokens: 8, expect: "no_errors" },
    ],
    { requestTimeoutMs: 60_000 },
  );
  const [steady, overload, recovery] = report.phases as [SoakPhaseResult, SoakPhaseResult, SoakPhaseResult];
  row(steady, "0 errors below saturation", `slots busy after: ${steady.busyAfter}`);
  row(overload, "only 429/503 with Retry-After above saturation", `${overload.shed} shed, ${overload.shedWithRetryAfter} with Retry-After`);
  row(recovery, "0 errors once the overload ends", `slots busy after: ${recovery.busyAfter}`);
  const rss = report.idle
    .map((m) => `${m.label} RSS ${m.rssAfterWarmupMiB.toFixed(0)}→${m.rssAtEndMiB.toFixed(0)} MiB` + (Number.isFinite(m.heapAtEndMiB) ? `, heap ${m.heapAfterWarmupMiB.toFixed(0)}→${m.heapAtEndMiB.toFixed(0)} MiB` : ""))
    .join("; ");
  recordCase({
    suite: "load (tests)",
    case: "memory of every process at rest, after the steady phase vs after the whole run",
    sent: steady.summary.sent + overload.summary.sent + recovery.summary.sent,
    succeeded: steady.summary.ok + overload.summary.ok + recovery.summary.ok,
    failed: {},
    lost: steady.lost + overload.lost + recovery.lost,
    expected: "flat",
    notes: rss,
  });

  for (const r of [steady, recovery]) {
    assert.deepEqual(r.summary.byError, {}, `${r.phase.name}: failures below saturation`);
    assert.equal(r.summary.ok, r.summary.sent, r.phase.name);
    assert.equal(r.busyAfter, 0, `${r.phase.name}: slots or queue entries left busy`);
  }
  assert.equal(steady.summary.sent, 2_000, "the steady phase ran out of time before sending everything");
  for (const r of [steady, overload, recovery]) {
    assert.equal(r.lost, 0, `${r.phase.name}: lost requests`);
    assert.equal(r.duplicated, 0, `${r.phase.name}: generations without a client success (duplicates)`);
    assert.equal(r.summary.mismatched, 0, `${r.phase.name}: answers with another request's id`);
    assert.equal(r.gatewayCountDelta, 0, `${r.phase.name}: gateway counted ${r.gatewayCountDelta} requests more than were sent`);
    assert.deepEqual(r.unexpected, {}, `${r.phase.name}: unexpected answers`);
    assert.ok(r.maxQueuedPerWorker <= MAX_QUEUE, `${r.phase.name}: ${r.maxQueuedPerWorker} queued on one worker`);
    assert.ok(r.maxGatewayInFlight <= r.phase.concurrency, `${r.phase.name}: gateway held ${r.maxGatewayInFlight} requests`);
  }
  assert.ok(overload.shed > 0, "the overload phase shed nothing: it was not above saturation");
  assert.equal(overload.shedWithRetryAfter, overload.shed, "a shed answer without Retry-After");
  // A short run: only gross growth fails here; bench:soak judges flatness over 20 000 requests.
  for (const t of report.memory) {
    assert.ok(t.growthMiB < 64, `${t.label}: RSS grew ${t.growthMiB.toFixed(1)} MiB`);
  }
  // Live heap (after a forced full collection) at rest, after the steady phase vs at the end: nothing left behind.
  for (const m of report.idle) {
    const growth = m.heapAtEndMiB - m.heapAfterWarmupMiB;
    if (Number.isFinite(growth)) assert.ok(growth < 16, `${m.label}: live heap at rest grew ${growth.toFixed(1)} MiB`);
  }
});
