/**
 * Block-parallel prefill machinery, in process, on the generated tiny smollm3
 * model: blocks prefilled in separate sequences, their KV cut out of the
 * state files and assembled into one sequence.
 *
 * The exactness test is the proof that the machinery adds no error of its
 * own: with the anchor set to everything before each block, the assembled
 * cache equals single-sequence prefill byte for byte, and so do the
 * next-token distribution and the greedy continuation.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { createLogger } from "@smollm/common";
import { clearSequence, prefillBlock, releaseBlock, type BlockPrefill } from "./block-prefill.ts";
import { loadConfig } from "./config.ts";
import { KvAssembler, copyBlock, readBlockStream, readSequenceState } from "./kv-state-file.ts";
import { loadWorkerModel, type LoadedModel } from "./model-loader.ts";

const logger = createLogger({ service: "block-prefill-test", level: "warn" });
let loaded: LoadedModel;
let dir: string;
let seqs: LlamaContextSequence[];
const BATCH = 256;

before(async () => {
  const config = loadConfig({
    argv: ["--model", "tiny", "--slots", "3", "--context-size", "4096", "--batch-size", String(BATCH)],
    env: {},
  });
  loaded = await loadWorkerModel(config, logger);
  seqs = Array.from({ length: 3 }, () => loaded.context.getSequence());
  dir = await mkdtemp(join(tmpdir(), "smollm-block-prefill-test-"));
});

after(async () => {
  await loaded?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Deterministic prompt of ordinary tokens of the small vocabulary. */
function prompt(n: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return 100 + (x % 800);
  });
}

const FULL_DISTRIBUTION = { temperature: 1, topK: 0, topP: 1, minP: 0 } as const;

/** The next-token distribution after evaluating `last` on top of what the sequence holds. */
async function nextDistribution(seq: LlamaContextSequence, last: number): Promise<Map<Token, number>> {
  const out = await seq.controlledEvaluate([[last as Token, { generateNext: { probabilities: true, options: FULL_DISTRIBUTION } }]]);
  const p = out[0]?.next?.probabilities;
  assert.ok(p !== undefined && p.size > 0, "got a distribution");
  return p;
}

async function greedy(seq: LlamaContextSequence, last: number, n: number): Promise<number[]> {
  const tokens: number[] = [];
  for await (const t of seq.evaluate([last as Token], { temperature: 0, yieldEogToken: true })) {
    tokens.push(t);
    if (tokens.length >= n) break;
  }
  return tokens;
}

function kl(p: Map<Token, number>, q: Map<Token, number>): number {
  let d = 0;
  for (const [t, pt] of p) if (pt > 0) d += pt * Math.log(pt / Math.max(q.get(t) ?? 0, 1e-30));
  return d;
}

async function streamBytes(path: string, first: number, count: number): Promise<Buffer> {
  const state = await readSequenceState(path);
  const parts: Buffer[] = [];
  for await (const chunk of readBlockStream(state, first, count, 1 << 16)) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Prefills `blocks` (bounds) of `tokens` with the given anchor rule, each in the next sequence, and assembles them. */
async function assemble(tokens: number[], bounds: number[], anchorOf: (start: number) => number[], name: string): Promise<string> {
  const cells = tokens.slice(0, -1);
  const path = join(dir, `${name}.state`);
  const assembler = new KvAssembler(path, cells, loaded.context.totalSequences);
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    // Sequences 1 and 2: sequence 0 keeps the tests' single-sequence reference.
    const seq = seqs[1 + (i % 2)]!;
    const block: BlockPrefill = { anchorTokens: anchorOf(start), blockTokens: cells.slice(start, end), blockStart: start };
    await prefillBlock(loaded.context, seq, block, { stepTokens: 2 * BATCH, signal: new AbortController().signal });
    const file = join(dir, `${name}-block${i}.state`);
    await seq.saveStateToFile(file);
    await releaseBlock(seq, block);
    const state = await readSequenceState(file);
    assert.equal(state.cellCount, start - (start - block.anchorTokens.length) + (end - start), "anchor + block cells saved");
    await copyBlock(state, start, end - start, assembler, i);
    await rm(file);
  }
  await assembler.finish();
  return path;
}

test("exactness: anchor = everything before each block ⇒ the assembled KV, next-token distribution and greedy continuation equal single-sequence prefill", async () => {
  const tokens = prompt(2600, 7);
  const n = tokens.length - 1;
  const last = tokens[n]!;
  const [a, b] = seqs as [LlamaContextSequence, LlamaContextSequence, LlamaContextSequence];

  // Single-sequence reference: what a worker does with the whole prompt.
  await clearSequence(a);
  await a.evaluateWithoutGeneratingNewTokens(tokens.slice(0, n) as Token[]);
  const reference = join(dir, "reference.state");
  await a.saveStateToFile(reference);

  // Block boundaries on batch boundaries, and one that is not.
  const assembled = await assemble(tokens, [0, 1024, 1900, n], (start) => tokens.slice(0, start), "exact");
  const state = await readSequenceState(assembled);
  assert.equal(state.nStream, loaded.context.totalSequences);
  assert.deepEqual([...state.positions], Array.from({ length: n }, (_, i) => i));
  assert.deepEqual(state.tokens, tokens.slice(0, n));
  assert.ok((await streamBytes(reference, 0, n)).equals(await streamBytes(assembled, 0, n)), "assembled K/V bytes equal the reference's");

  // Both caches loaded the same way, then the reference computed in place.
  await b.loadStateFromFile(assembled, { acceptRisk: true });
  assert.deepEqual(b.contextTokens, tokens.slice(0, n));
  const pAssembled = await nextDistribution(b, last);
  const pReference = await nextDistribution(a, last);
  assert.equal(pAssembled.size, pReference.size);
  for (const [t, p] of pReference) assert.equal(pAssembled.get(t), p, `probability of token ${t}`);

  // Greedy continuation from both (the last prompt token is now in both caches).
  await a.eraseContextTokenRanges([{ start: n, end: a.nextTokenIndex }]);
  await b.eraseContextTokenRanges([{ start: n, end: b.nextTokenIndex }]);
  const ga = await greedy(a, last, 32);
  const gb = await greedy(b, last, 32);
  assert.equal(ga.length, 32);
  assert.deepEqual(gb, ga);
  await clearSequence(a);
  await clearSequence(b);
});

test("approximation: a short anchor puts each block's KV at its true positions; the distribution stays close", async () => {
  const tokens = prompt(2600, 11);
  const n = tokens.length - 1;
  const last = tokens[n]!;
  const anchor = 256;
  const assembled = await assemble(tokens, [0, 1024, 1800, n], (start) => tokens.slice(0, Math.min(anchor, start)), "approx");
  const state = await readSequenceState(assembled);
  assert.deepEqual([...state.positions], Array.from({ length: n }, (_, i) => i));
  const exact = await assemble(tokens, [0, 1024, 1800, n], (start) => tokens.slice(0, start), "exact2");
  assert.ok((await streamBytes(assembled, 0, 1024)).equals(await streamBytes(exact, 0, 1024)), "block 0 needs no anchor and is exact");
  const [a, b] = seqs as [LlamaContextSequence, LlamaContextSequence, LlamaContextSequence];
  await a.loadStateFromFile(exact, { acceptRisk: true });
  await b.loadStateFromFile(assembled, { acceptRisk: true });
  const pExact = await nextDistribution(a, last);
  const pApprox = await nextDistribution(b, last);
  const divergence = kl(pExact, pApprox);
  assert.ok(Number.isFinite(divergence) && divergence >= 0 && divergence < 0.5, `KL(exact || approx) = ${divergence}`);
  await a.eraseContextTokenRanges([{ start: n, end: a.nextTokenIndex }]);
  const g = await greedy(b, last, 8);
  assert.equal(g.length, 8);
  await clearSequence(a);
  await clearSequence(b);
});

test("a block at offset positions leaves its sequence empty and reusable; cancellation stops between steps", async () => {
  const tokens = prompt(1200, 3);
  const seq = seqs[2]!;
  const block: BlockPrefill = { anchorTokens: tokens.slice(0, 100), blockTokens: tokens.slice(600, 1100), blockStart: 600 };
  await prefillBlock(loaded.context, seq, block, { stepTokens: 128, signal: new AbortController().signal });
  await releaseBlock(seq, block);
  assert.equal(seq.nextTokenIndex, 0);
  // The sequence works normally afterwards, from position 0.
  await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, 50) as Token[]);
  assert.equal(seq.nextTokenIndex, 50);

  const abort = new AbortController();
  let steps = 0;
  await assert.rejects(
    prefillBlock(loaded.context, seq, block, {
      stepTokens: 64,
      signal: abort.signal,
      onProgress: () => {
        if (++steps === 2) abort.abort();
      },
    }),
  );
  assert.equal(steps, 2, "no step after the abort");
  await clearSequence(seq);
  assert.equal(seq.nextTokenIndex, 0);
});

test("without flash attention (V stored transposed) the assembly is exact too", async () => {
  const config = loadConfig({
    argv: ["--model", "tiny", "--slots", "2", "--context-size", "2048", "--batch-size", String(BATCH), "--flash-attention", "false"],
    env: {},
  });
  const other = await loadWorkerModel(config, logger);
  try {
    const [a, b] = [other.context.getSequence(), other.context.getSequence()];
    const tokens = prompt(900, 5);
    const n = tokens.length - 1;
    await a.evaluateWithoutGeneratingNewTokens(tokens.slice(0, n) as Token[]);
    const reference = join(dir, "reference-vtrans.state");
    await a.saveStateToFile(reference);
    const path = join(dir, "assembled-vtrans.state");
    const assembler = new KvAssembler(path, tokens.slice(0, n), other.context.totalSequences);
    for (const [i, [start, end]] of [[0, 512], [512, n]].entries()) {
      const block: BlockPrefill = { anchorTokens: tokens.slice(0, start), blockTokens: tokens.slice(start, end), blockStart: start! };
      await prefillBlock(other.context, b, block, { stepTokens: BATCH, signal: new AbortController().signal });
      const file = join(dir, `vtrans-${i}.state`);
      await b.saveStateToFile(file);
      await releaseBlock(b, block);
      const state = await readSequenceState(file);
      assert.equal(state.format?.vTrans, true);
      await copyBlock(state, start!, end! - start!, assembler, i);
    }
    await assembler.finish();
    assert.ok((await streamBytes(reference, 0, n)).equals(await streamBytes(path, 0, n)));
    await b.loadStateFromFile(path, { acceptRisk: true });
    assert.deepEqual(await greedy(b, tokens[n]!, 16), await greedy(a, tokens[n]!, 16));
  } finally {
    await other.close();
  }
});
