import { test } from "node:test";
import assert from "node:assert/strict";
import { ContextLengthError, UnavailableError } from "@smollm/common";
import type { WorkerInfo } from "@smollm/cluster-state";
import { Router } from "./router.ts";
import { LoadScorer } from "./scorers/load-scorer.ts";
import { KvCapacityScorer } from "./scorers/kv-scorer.ts";
import type { Scorer } from "./scorers/scorer.ts";

function worker(id: string, over: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id, address: `${id}:1`, model: "m", slots: 4, contextSize: 1000, activeSlots: 0, queued: 0, maxQueue: 4,
    freeKvTokens: 4000, draining: false, startedAt: 0, updatedAt: 100, ...over,
  };
}
const query = (n: number, maxTokens = 10) => ({ requestId: "r", promptTokens: new Array<number>(n).fill(1), maxTokens });

test("prefers the least loaded worker and spreads a burst", () => {
  const router = new Router({ scorers: [{ scorer: new LoadScorer(), weight: 1 }], now: () => 200 });
  const workers = [worker("a", { activeSlots: 2 }), worker("b"), worker("c", { activeSlots: 1 })];
  const picks = [0, 1, 2, 3].map(() => router.route(query(5), workers, new Set()).worker.id);
  // b is idle; then pending assignments make b as busy as c, then a…
  assert.equal(picks[0], "b");
  assert.deepEqual(new Set(picks), new Set(["a", "b", "c"]));
});

test("only workers whose context fits; a request no worker fits names the limit", () => {
  const router = new Router({ scorers: [{ scorer: new LoadScorer(), weight: 1 }] });
  const workers = [worker("short", { contextSize: 512 }), worker("long", { contextSize: 8192, activeSlots: 3 })];
  assert.equal(router.route(query(1000), workers, new Set()).worker.id, "long");
  assert.throws(
    () => router.route(query(9000), workers, new Set()),
    (e: unknown) => e instanceof ContextLengthError && /maximum context length is 8192 tokens/.test(e.message) && /9010 tokens/.test(e.message),
  );
});

test("excluded and draining workers are skipped; none left is unavailable", () => {
  const router = new Router({ scorers: [{ scorer: new LoadScorer(), weight: 1 }] });
  const workers = [worker("a"), worker("b", { draining: true })];
  assert.throws(() => router.route(query(5), workers, new Set(["a"])), UnavailableError);
  assert.throws(() => router.route(query(5), [], new Set()), /no worker is registered/);
});

test("avoided workers (a gateway's ejections) are chosen only when no other worker fits", () => {
  const router = new Router({ scorers: [{ scorer: new LoadScorer(), weight: 1 }] });
  // a is idle but avoided: the busier b is chosen.
  const workers = [worker("a"), worker("b", { activeSlots: 3 }), worker("long", { contextSize: 8192, activeSlots: 3 })];
  assert.equal(router.route(query(5), workers.slice(0, 2), new Set(), new Set(["a"])).worker.id, "b");
  // Every candidate avoided: better one of them than none.
  assert.equal(router.route(query(5), workers.slice(0, 2), new Set(), new Set(["a", "b"])).worker.id, "a");
  // Only the avoided worker fits the context: it is chosen, not refused.
  assert.equal(router.route(query(2000), workers, new Set(), new Set(["long"])).worker.id, "long");
  // Exclusions stay hard.
  assert.throws(() => router.route(query(5), [worker("a")], new Set(["a"]), new Set(["a"])), UnavailableError);
});

test("a worker believed full (slots busy, queue at its bound) is passed over for one with room, whatever its cache holds", () => {
  const router = new Router({
    scorers: [{ scorer: { name: "prefix", locality: true, score: (_q, cs) => cs.map((c) => (c.info.id === "hot" ? 1 : 0)) }, weight: 5 }, { scorer: new LoadScorer(), weight: 1 }],
    imbalance: { absolute: 1_000, relative: 1_000 },
  });
  // slots 4 + maxQueue 4: "hot" has 8 busy (full), "cold" 7 (one place left).
  const workers = [worker("hot", { activeSlots: 4, queued: 4 }), worker("cold", { activeSlots: 4, queued: 3 })];
  assert.equal(router.route(query(5), workers, new Set()).worker.id, "cold");
  // Both full: still routed (the worker decides), by the scorers.
  const full = [worker("hot", { activeSlots: 4, queued: 4 }), worker("cold", { activeSlots: 4, queued: 4 })];
  assert.equal(router.route(query(5), full, new Set()).worker.id, "hot");
});

test("a failing scorer degrades routing instead of failing it", () => {
  const failures: string[] = [];
  const broken: Scorer = { name: "broken", score: () => { throw new Error("index gone"); } };
  const router = new Router({
    scorers: [{ scorer: broken, weight: 5 }, { scorer: new LoadScorer(), weight: 1 }, { scorer: new KvCapacityScorer(), weight: 0.5 }],
    onScorerError: (name) => failures.push(name),
  });
  const d = router.route(query(5), [worker("a", { activeSlots: 3 }), worker("b")], new Set());
  assert.equal(d.worker.id, "b");
  assert.deepEqual(failures, ["broken"]);
});

test("prefix locality wins over mild load; the imbalance guard overrides it; no index means load-only", async () => {
  const { PrefixScorer } = await import("./scorers/prefix-scorer.ts");
  const router = new Router({
    scorers: [{ scorer: new PrefixScorer(), weight: 2 }, { scorer: new LoadScorer(), weight: 1 }],
    imbalance: { absolute: 3, relative: 1.5 },
  });
  const q = { ...query(100), cachedTokens: new Map([["a", 80], ["b", 0]]) };
  const d1 = router.route(q, [worker("a", { activeSlots: 1 }), worker("b")], new Set());
  assert.equal(d1.worker.id, "a");
  assert.equal(d1.outcome, "prefix");
  assert.equal(d1.expectedCachedTokens, 80);
  const d2 = router.route(q, [worker("a", { activeSlots: 4, queued: 2 }), worker("b", { updatedAt: 1e15 })], new Set());
  assert.equal(d2.worker.id, "b");
  assert.equal(d2.outcome, "imbalance_guard");
  const d3 = router.route(query(100), [worker("a", { activeSlots: 1, updatedAt: 1e15 }), worker("b", { updatedAt: 1e15 })], new Set());
  assert.equal(d3.outcome, "load_only_no_index");
  assert.equal(d3.worker.id, "b");
});

test("a full locality pick does not beat a worker with a free slot", async () => {
  const { PrefixScorer } = await import("./scorers/prefix-scorer.ts");
  const router = new Router({ scorers: [{ scorer: new PrefixScorer(), weight: 2 }, { scorer: new LoadScorer(), weight: 1 }] });
  const q = { ...query(100), cachedTokens: new Map([["a", 90]]) };
  const d = router.route(q, [worker("a", { activeSlots: 4, updatedAt: 1e15 }), worker("b", { activeSlots: 2, updatedAt: 1e15 })], new Set());
  assert.equal(d.worker.id, "b");
  assert.equal(d.outcome, "imbalance_guard");
});
