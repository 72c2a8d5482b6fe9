/**
 * Engine tests against real node-llama-cpp on the generated tiny smollm3 model.
 * Tests run one after another and share one loaded model (4 slots, 1024 tokens each).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ClusterError, createLogger, createRegistry } from "@smollm/common";
import { loadConfig } from "./config.ts";
import { Engine, type GenerateParams, type GenerationEvent, type GenerationFinishedEvent, type GenerationStartedEvent } from "./engine.ts";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
import { loadWorkerModel, type LoadedModel } from "./model-loader.ts";

const SLOTS = 4;
const MAX_QUEUE = 2;
const logger = createLogger({ service: "worker-test", level: "warn" });
let loaded: LoadedModel;
let engine: Engine;
let metrics: WorkerMetrics;
const batches: number[] = [];

before(async () => {
  const config = loadConfig({
    argv: ["--model", "tiny", "--slots", String(SLOTS), "--context-size", "1024", "--max-queue", String(MAX_QUEUE)],
    env: {},
  });
  metrics = createWorkerMetrics(createRegistry("worker"), config.slots);
  loaded = await loadWorkerModel(config, logger, (sequences, tokens) => {
    batches.push(sequences);
    metrics.decodeBatchSequences.observe(sequences);
    metrics.decodeBatchTokens.observe(tokens);
  });
  engine = new Engine({ loaded, metrics, logger, maxQueue: config.maxQueue, queueTimeoutMs: 10_000 });
});

after(async () => {
  await engine?.close();
  await loaded?.close();
});

interface Collected {
  started: GenerationStartedEvent | undefined;
  finished: GenerationFinishedEvent | undefined;
  text: string;
  deltaTokens: number;
  events: GenerationEvent[];
}

async function collect(params: GenerateParams, signal?: AbortSignal, onEvent?: (e: GenerationEvent) => void): Promise<Collected> {
  const c: Collected = { started: undefined, finished: undefined, text: "", deltaTokens: 0, events: [] };
  for await (const event of engine.generate(params, signal)) {
    c.events.push(event);
    onEvent?.(event);
    if (event.type === "started") c.started = event;
    else if (event.type === "delta") {
      c.text += event.text;
      c.deltaTokens += event.tokens;
    } else c.finished = event;
  }
  return c;
}

/** Distinct prompts made of ordinary tokens of the small vocabulary. */
function prompt(seed: number, length = 12): number[] {
  return Array.from({ length }, (_, i) => 100 + ((seed * 131 + i * 17) % 500));
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await sleep(2);
  }
}

test("concurrent generations all finish, decoded together in shared batches", async () => {
  batches.length = 0;
  const results = await Promise.all(
    [1, 2, 3, 4].map((seed) => collect({ promptTokens: prompt(seed), maxTokens: 48, ignoreEos: true, sampling: { temperature: 0.8, seed } })),
  );
  const slots = new Set<number>();
  for (const r of results) {
    assert.equal(r.finished?.reason, "length");
    assert.equal(r.finished?.completionTokens, 48);
    assert.equal(r.finished?.promptTokens, 12);
    assert.ok(r.deltaTokens <= 48 && r.deltaTokens >= 40, `delta tokens ${r.deltaTokens}`);
    assert.ok(!r.text.includes("\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"), "text is mostly decodable");
    slots.add(r.started!.slot);
  }
  assert.equal(slots.size, 4, "each generation had its own slot");
  const shared = batches.filter((n) => n > 1).length;
  assert.ok(shared > batches.length / 2, `most decode batches held >1 sequence: ${shared} of ${batches.length}`);
  assert.ok(Math.max(...batches) >= 3, `max sequences per batch ${Math.max(...batches)}`);
  const histogram = await metrics.decodeBatchSequences.get();
  const count = histogram.values.find((v) => v.metricName === "smollm_worker_decode_batch_sequences_count")?.value ?? 0;
  const le1 = histogram.values.find((v) => v.metricName === "smollm_worker_decode_batch_sequences_bucket" && v.labels["le"] === 1)?.value ?? 0;
  assert.ok(count > 0 && count - le1 > 0, "the histogram saw multi-sequence batches");
});

test("a prompt extending an earlier prompt + completion lands on that slot and reuses its KV", async () => {
  const first = await collect({ promptTokens: prompt(10, 20), maxTokens: 16, ignoreEos: true });
  const slot = first.started!.slot;
  const cached = engine.slotTokens(slot);
  // The last sampled token is never evaluated, so the slot holds prompt + 15.
  assert.equal(cached.length, 20 + 16 - 1);
  assert.deepEqual(cached.slice(0, 20), prompt(10, 20));
  const followUp = [...cached, ...prompt(11, 8)];
  // A competing new request at the same time must not take that slot.
  const [second, other] = await Promise.all([
    collect({ promptTokens: followUp, maxTokens: 8, ignoreEos: true }),
    collect({ promptTokens: prompt(12, 20), maxTokens: 8, ignoreEos: true }),
  ]);
  assert.equal(second.started!.slot, slot);
  assert.equal(second.started!.cachedTokens, cached.length);
  assert.equal(second.finished!.cachedTokens, cached.length);
  assert.notEqual(other.started!.slot, slot);

  // The very same prompt again: all but its last token come from the cache.
  const again = await collect({ promptTokens: followUp, maxTokens: 4, ignoreEos: true });
  assert.equal(again.started!.slot, slot);
  assert.equal(again.started!.cachedTokens, followUp.length - 1);
});

test("aborting a generation frees its slot at the next token boundary", async () => {
  const controller = new AbortController();
  let abortedAt = 0;
  const run = collect({ promptTokens: prompt(20), maxTokens: 900, ignoreEos: true }, controller.signal, (e) => {
    if (e.type === "delta" && abortedAt === 0) {
      abortedAt = performance.now();
      controller.abort();
    }
  });
  await until(() => abortedAt > 0);
  await until(() => engine.load.activeSlots === 0, 1_000);
  const freedMs = performance.now() - abortedAt;
  const result = await run;
  assert.ok(freedMs < 250, `slot freed ${freedMs.toFixed(1)} ms after abort`);
  assert.equal(result.finished?.reason, "cancelled");
  assert.ok(result.finished!.completionTokens < 50);
});

test("full slots queue FIFO up to max_queue, then OverloadedError; an aborted queued request leaves the queue", async () => {
  const controllers = Array.from({ length: SLOTS + MAX_QUEUE }, () => new AbortController());
  const runs = controllers.map((c, i) =>
    collect({ promptTokens: prompt(30 + i), maxTokens: 900, ignoreEos: true }, c.signal).catch((e: unknown) => e),
  );
  await until(() => engine.load.activeSlots === SLOTS && engine.load.queued === MAX_QUEUE);
  await assert.rejects(
    collect({ promptTokens: prompt(40), maxTokens: 10 }),
    (e: unknown) => e instanceof ClusterError && e.code === "resource_exhausted" && (e.retryAfterMs ?? 0) > 0,
  );
  controllers[SLOTS]!.abort(); // the first queued one
  await until(() => engine.load.queued === MAX_QUEUE - 1);
  const leftQueue = await runs[SLOTS];
  assert.ok(leftQueue instanceof ClusterError && leftQueue.code === "cancelled", String(leftQueue));

  // Freeing a slot lets the oldest remaining waiter in.
  controllers[0]!.abort();
  await until(() => engine.load.queued === 0 && engine.load.activeSlots === SLOTS);
  for (const c of controllers) c.abort();
  await Promise.all(runs);
  await until(() => engine.load.activeSlots === 0);
});

test("requests that cannot fit or are malformed are refused before queueing", async () => {
  await assert.rejects(
    collect({ promptTokens: prompt(50, 1000), maxTokens: 100 }),
    (e: unknown) => e instanceof ClusterError && e.code === "context_length_exceeded" && /1000.*100.*1100.*1024/.test(e.message),
  );
  await assert.rejects(
    collect({ promptTokens: prompt(51, 1024), maxTokens: 0 }),
    (e: unknown) => e instanceof ClusterError && e.code === "context_length_exceeded",
  );
  await assert.rejects(
    collect({ promptTokens: [1, 2, loaded.vocabSize], maxTokens: 4 }),
    (e: unknown) => e instanceof ClusterError && e.code === "invalid_argument" && e.param === "prompt_tokens",
  );
  await assert.rejects(
    collect({ promptTokens: [], maxTokens: 4 }),
    (e: unknown) => e instanceof ClusterError && e.code === "invalid_argument",
  );
  await assert.rejects(
    collect({ promptTokens: [1], maxTokens: 4, sampling: { topP: 2 } }),
    (e: unknown) => e instanceof ClusterError && e.code === "invalid_argument" && e.param === "top_p",
  );
  // max_tokens 0: until the slot is full.
  const full = await collect({ promptTokens: prompt(52, 1000), maxTokens: 0, ignoreEos: true });
  assert.equal(full.finished?.reason, "length");
  assert.equal(full.finished?.completionTokens, 24);
});

test("stop strings end generation before them and are never emitted", async () => {
  // One prompt token, a fixed seed, alone in the context: both runs sample the same
  // tokens. (Greedy decoding of a random model tends to repeat one token forever.)
  const base = { promptTokens: [prompt(60)[0]!], maxTokens: 60, ignoreEos: true, sampling: { temperature: 1.2, seed: 7 } };
  const reference = await collect(base);
  const text = reference.text;
  let stop = "";
  for (let k = Math.floor(text.length / 2); k + 3 <= text.length; k++) {
    const candidate = text.slice(k, k + 3);
    if (!candidate.includes("\uFFFD") && text.indexOf(candidate) > 0) {
      stop = candidate;
      break;
    }
  }
  assert.ok(stop !== "", `no usable stop string in ${JSON.stringify(text)}`);
  const stopped = await collect({ ...base, stop: ["\u0000never", stop] });
  assert.equal(stopped.finished?.reason, "stop");
  assert.equal(stopped.text, text.slice(0, text.indexOf(stop)));
  assert.ok(stopped.finished!.completionTokens < 60);
});

test("end-of-generation tokens stop a generation unless ignore_eos", async () => {
  const eogIds = [...loaded.endOfGeneration.keys()].filter((id) => loaded.endOfGeneration[id] === 1);
  assert.ok(eogIds.length > 0);
  // Sampling at a high temperature from a random model reaches an EOG token sooner or later;
  // over many short runs at least one must stop early with reason "stop".
  let stoppedEarly = 0;
  for (let seed = 1; seed <= 8 && stoppedEarly === 0; seed++) {
    const runs = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        collect({ promptTokens: prompt(70 + i), maxTokens: 200, sampling: { temperature: 5, seed: seed * 10 + i } }),
      ),
    );
    stoppedEarly += runs.filter((r) => r.finished?.reason === "stop" && r.finished.completionTokens < 200).length;
    for (const r of runs) assert.ok(!r.text.includes("<|im_end|>"));
  }
  assert.ok(stoppedEarly > 0, "some generation ended at an EOG token");
});

test("a stream interval coalesces fast tokens into fewer deltas without losing text", async () => {
  const base = { promptTokens: [prompt(90)[0]!], maxTokens: 120, ignoreEos: true, sampling: { temperature: 1, seed: 11 } };
  const each = await collect(base);
  const paced = await collect({ ...base, streamIntervalMs: 15 });
  const deltas = (c: Collected): number => c.events.filter((e) => e.type === "delta").length;
  assert.equal(paced.text, each.text);
  assert.equal(paced.finished?.completionTokens, 120);
  assert.ok(deltas(paced) * 3 < deltas(each), `${deltas(paced)} paced deltas vs ${deltas(each)}`);
  assert.equal(paced.events[1]?.type, "delta", "the first delta is not delayed");
});

test("a request reusing a slot joins generations already running: its first token does not wait for them to end", async () => {
  // Every slot first holds a stale prompt, so the newcomer's slot must be
  // erased: a context-locked operation that node-llama-cpp's dispatcher would
  // hold off for as long as the others keep generating (see context-gate.ts).
  await Promise.all([11, 12, 13, 14].map((seed) => collect({ promptTokens: prompt(seed), maxTokens: 4, ignoreEos: true, sampling: { temperature: 0 } })));
  const long = [21, 22].map((seed) => {
    let firstAt = 0;
    const run = collect({ promptTokens: prompt(seed), maxTokens: 900, ignoreEos: true, sampling: { temperature: 0 } }, undefined, (e) => {
      if (e.type === "delta" && firstAt === 0) firstAt = performance.now();
    });
    return { run, started: () => firstAt > 0 };
  });
  await until(() => long.every((l) => l.started()));
  await sleep(50); // decoding steadily now
  const t0 = performance.now();
  let ttft = 0;
  const short = await collect({ promptTokens: prompt(31), maxTokens: 4, ignoreEos: true, sampling: { temperature: 0 } }, undefined, (e) => {
    if (e.type === "delta" && ttft === 0) ttft = performance.now() - t0;
  });
  const shortDone = performance.now() - t0;
  const [a, b] = await Promise.all(long.map((l) => l.run));
  const longDone = performance.now() - t0;
  assert.equal(short.finished?.reason, "length");
  assert.ok(short.started && short.started.cachedTokens === 0, "the slot held another prompt");
  assert.equal(a?.deltaTokens, 900);
  assert.equal(b?.deltaTokens, 900);
  assert.ok(ttft > 0 && ttft < 1_000, `first token after ${ttft.toFixed(0)} ms`);
  assert.ok(shortDone < longDone / 2, `the short request ended at ${shortDone.toFixed(0)} ms, the long ones at ${longDone.toFixed(0)} ms`);
});


test("a draining engine refuses new work with UNAVAILABLE", async () => {
  const drained = engine.drain();
  await drained;
  await assert.rejects(
    collect({ promptTokens: prompt(80), maxTokens: 4 }),
    (e: unknown) => e instanceof ClusterError && e.code === "unavailable",
  );
});
