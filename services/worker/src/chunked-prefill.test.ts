/**
 * Below the block-parallel threshold one worker prefills a long prompt alone:
 * node-llama-cpp cuts it into batch-size chunks and puts the other sequences'
 * next tokens into every batch, so running generations keep decoding instead
 * of waiting for the whole prefill. The same holds for a block prefilled for
 * another worker (block-prefill.ts submits it to the same batch queue).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, createRegistry } from "@smollm/common";
import { clearSequence, prefillBlock } from "./block-prefill.ts";
import { loadConfig } from "./config.ts";
import { Engine, type GenerationEvent } from "./engine.ts";
import { createWorkerMetrics } from "./metrics.ts";
import { loadWorkerModel, type LoadedModel } from "./model-loader.ts";

const logger = createLogger({ service: "chunked-prefill-test", level: "warn" });
let loaded: LoadedModel;
let engine: Engine;

before(async () => {
  const config = loadConfig({ argv: ["--model", "tiny", "--slots", "2", "--context-size", "12288", "--batch-size", "256"], env: {} });
  loaded = await loadWorkerModel(config, logger);
  engine = new Engine({ loaded, metrics: createWorkerMetrics(createRegistry("worker"), 2), logger, maxQueue: 4, queueTimeoutMs: 10_000, streamIntervalMs: 0 });
});
after(async () => {
  await engine?.close();
  await loaded?.close();
});

const long = Array.from({ length: 6000 }, (_, i) => 100 + ((i * 37) % 800));

/** Times at which a generation's text deltas arrived (one per token: no stream interval). */
async function deltaTimes(events: AsyncGenerator<GenerationEvent>, out: number[], until?: () => boolean): Promise<void> {
  for await (const e of events) {
    if (e.type === "delta") for (let i = 0; i < e.tokens; i++) out.push(performance.now());
    if (until?.() === true) break;
  }
}

test("a running generation keeps decoding while another slot prefills a long prompt", async () => {
  const short: number[] = [];
  let longDone = false;
  // A generation that is already decoding when the long prompt arrives.
  const running = deltaTimes(engine.generate({ promptTokens: [300, 301, 302], maxTokens: 5000, ignoreEos: true }), short, () => longDone);
  while (short.length < 5) await new Promise((r) => setTimeout(r, 5));
  const longStart = performance.now();
  let firstLongToken = 0;
  for await (const e of engine.generate({ promptTokens: long, maxTokens: 1, ignoreEos: true })) {
    if (e.type === "delta" && firstLongToken === 0) firstLongToken = performance.now();
    if (e.type === "finished" && firstLongToken === 0) firstLongToken = performance.now();
  }
  longDone = true;
  await running;
  const during = short.filter((t) => t > longStart && t < firstLongToken).length;
  // 6000 prompt tokens are at least 23 batches of 256; the running generation gets a token in (nearly) each.
  assert.ok(during >= 15, `${during} tokens decoded during a ${Math.round(firstLongToken - longStart)} ms prefill`);
});

test("a block prefilled for another worker shares batches the same way", async () => {
  const short: number[] = [];
  let blockDone = false;
  const running = deltaTimes(engine.generate({ promptTokens: [400, 401, 402], maxTokens: 5000, ignoreEos: true }), short, () => blockDone);
  while (short.length < 5) await new Promise((r) => setTimeout(r, 5));
  const start = performance.now();
  await engine.withSlot(long, new AbortController().signal, async (sequence, signal) => {
    await prefillBlock(loaded.context, sequence, { anchorTokens: long.slice(0, 512), blockTokens: long.slice(3000), blockStart: 3000 }, { stepTokens: 1024, signal });
    await clearSequence(sequence);
  });
  const end = performance.now();
  blockDone = true;
  await running;
  const during = short.filter((t) => t > start && t < end).length;
  assert.ok(during >= 10, `${during} tokens decoded during a ${Math.round(end - start)} ms block prefill`);
});
