import { test } from "node:test";
import assert from "node:assert/strict";
import type { WorkerInfo } from "@smollm/cluster-state";
import { blockBounds, parseAnchorRule, planKvTransfer, type PrefillPlannerOptions } from "./prefill-planner.ts";

function worker(id: string, over: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id, address: `${id}:1`, model: "m", slots: 2, contextSize: 65536, activeSlots: 0, queued: 0, maxQueue: 4,
    freeKvTokens: 131072, draining: false, startedAt: 0, updatedAt: 100, ...over,
  };
}

const options: PrefillPlannerOptions = {
  parallelMinTokens: 16384,
  parallelMaxWorkers: 4,
  parallelMinBlockTokens: 2048,
  anchor: { kind: "tokens", tokens: 4096 },
  prefixFetchMinTokens: 1024,
};

const input = (promptTokens: number, workers: WorkerInfo[], over: object = {}) => ({
  promptTokens,
  maxTokens: 16,
  exactPrefill: false,
  decoder: workers[0]!,
  workers,
  ...over,
});

test("a long prompt is cut into one block per idle worker; the decoder takes the first, without address", () => {
  const workers = [worker("d"), worker("a"), worker("b", { activeSlots: 1 }), worker("c")];
  const plan = planKvTransfer(input(40_001, workers), options).parallelPrefill;
  assert.ok(plan);
  assert.equal(plan.blocks.length, 4);
  assert.deepEqual(plan.blocks[0], { start: 0, end: plan.blocks[0]!.end, workerId: "d", workerAddress: "" });
  // Idle helpers first; the busy one last.
  assert.deepEqual(plan.blocks.slice(1).map((b) => b.workerId), ["a", "c", "b"]);
  assert.equal(plan.blocks[1]!.workerAddress, "a:1");
  let at = 0;
  for (const b of plan.blocks) {
    assert.equal(b.start, at);
    assert.ok(b.end > b.start);
    at = b.end;
  }
  assert.equal(at, 40_000, "blocks cover every prompt token but the last");
  assert.equal(plan.anchorTokens, 4096);
  assert.equal(plan.fullAnchor, false);
  // With an anchor the first block is longer by about the anchor: equal work per worker.
  const first = plan.blocks[0]!.end;
  const second = plan.blocks[1]!.end - plan.blocks[1]!.start;
  assert.ok(Math.abs(first - second - 4096) <= 128, `first ${first}, second ${second}`);
});

test("no plan below the threshold, for exact prefill, or when the decoder has the prompt cached", () => {
  const workers = [worker("d"), worker("a")];
  assert.deepEqual(planKvTransfer(input(10_000, workers), options), {});
  assert.deepEqual(planKvTransfer(input(40_000, workers, { exactPrefill: true }), options), {});
  assert.deepEqual(planKvTransfer(input(40_000, workers), { ...options, parallelMinTokens: 0 }), {});
  const cached = new Map([["d", 30_000]]);
  assert.equal(planKvTransfer(input(40_000, workers, { cachedTokens: cached }), options).parallelPrefill, undefined);
});

test("helpers need a free slot and room for anchor + block; fewer blocks otherwise", () => {
  const busy = [worker("d"), worker("a", { activeSlots: 2 }), worker("b", { queued: 1, activeSlots: 1 })];
  assert.equal(planKvTransfer(input(40_000, busy), options).parallelPrefill, undefined);
  const pending = [worker("d"), worker("a")];
  assert.equal(planKvTransfer(input(40_000, pending, { pending: () => 2 }), options).parallelPrefill, undefined);
  // 3 workers, but one too small for anchor + a third of the prompt: two blocks.
  const small = [worker("d"), worker("a"), worker("tiny", { contextSize: 8192 })];
  const plan = planKvTransfer(input(40_000, small), options).parallelPrefill;
  assert.ok(plan);
  assert.deepEqual(plan.blocks.map((b) => b.workerId), ["d", "a"]);
  assert.ok(plan.blocks[1]!.end - plan.blocks[1]!.start + 4096 < 65536);
});

test("full anchor (exact): helpers must hold everything up to their block's end", () => {
  const workers = [worker("d"), worker("a", { contextSize: 65536 }), worker("b", { contextSize: 20_000 })];
  const plan = planKvTransfer(input(30_001, workers), { ...options, anchor: { kind: "full" } }).parallelPrefill;
  assert.ok(plan);
  assert.equal(plan.fullAnchor, true);
  // b cannot hold [0, end) of any block but the first (the decoder's): two blocks, a takes the second.
  assert.deepEqual(plan.blocks.map((b) => b.workerId), ["d", "a"]);
  for (const b of plan.blocks.slice(1)) {
    const w = workers.find((x) => x.id === b.workerId)!;
    assert.ok(w.contextSize > b.end, `${b.workerId} holds [0, ${b.end})`);
  }
});

test("block bounds cover [0, n) in increasing, aligned steps", () => {
  for (const n of [2048, 16_383, 40_000, 131_071]) {
    for (const k of [2, 3, 4]) {
      for (const anchor of [{ kind: "full" } as const, { kind: "first-block" } as const, { kind: "tokens", tokens: 1000 } as const]) {
        const b = blockBounds(n, k, anchor);
        assert.equal(b[0], 0);
        assert.equal(b[b.length - 1], n);
        for (let i = 1; i < b.length; i++) assert.ok(b[i]! > b[i - 1]!);
        for (let i = 1; i < b.length - 1; i++) assert.equal(b[i]! % 64, 0);
      }
    }
  }
  assert.deepEqual(parseAnchorRule("full"), { kind: "full" });
  assert.deepEqual(parseAnchorRule("first-block"), { kind: "first-block" });
  assert.deepEqual(parseAnchorRule("2048"), { kind: "tokens", tokens: 2048 });
  assert.equal(parseAnchorRule("-1"), undefined);
});

test("prefix fetch: from the worker holding a much longer prefix, when it has a free slot", () => {
  const workers = [worker("d"), worker("holder")];
  const cached = new Map([["holder", 3000], ["d", 100]]);
  assert.deepEqual(planKvTransfer(input(5000, workers, { cachedTokens: cached }), options), {
    kvSource: { workerId: "holder", workerAddress: "holder:1", tokens: 3000 },
  });
  // Never more than prompt - 1 tokens.
  const all = new Map([["holder", 5000]]);
  assert.equal(planKvTransfer(input(5000, workers, { cachedTokens: all }), options).kvSource?.tokens, 4999);
  // Not worth it, holder busy, or no index.
  assert.deepEqual(planKvTransfer(input(5000, workers, { cachedTokens: new Map([["holder", 1000]]) }), options), {});
  const busy = [worker("d"), worker("holder", { activeSlots: 2 })];
  assert.deepEqual(planKvTransfer(input(5000, busy, { cachedTokens: cached }), options), {});
  assert.deepEqual(planKvTransfer(input(5000, workers), options), {});
  assert.deepEqual(planKvTransfer(input(5000, workers, { cachedTokens: cached }), { ...options, prefixFetchMinTokens: 0 }), {});
});

test("a maximum block size gives each worker several blocks, in turn", () => {
  const workers = [worker("d", { contextSize: 131_072 }), worker("a", { contextSize: 131_072 })];
  const plan = planKvTransfer(input(128_001, workers), { ...options, parallelMaxBlockTokens: 20_000 }).parallelPrefill;
  assert.ok(plan);
  // 128000 / 20000 → 7 blocks, rounded up to a multiple of the 2 workers.
  assert.equal(plan.blocks.length, 8);
  assert.deepEqual(plan.blocks.map((b) => b.workerId), ["d", "a", "d", "a", "d", "a", "d", "a"]);
  assert.ok(plan.blocks.every((b) => b.end - b.start <= 20_000 + 4096));
  assert.equal(plan.blocks[plan.blocks.length - 1]!.end, 128_000);
  assert.equal(plan.blocks.filter((b) => b.workerId === "d").every((b) => b.workerAddress === ""), true);
});
