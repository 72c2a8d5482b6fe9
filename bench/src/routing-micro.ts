/**
 * Routing micro-benchmark: scheduler decision latency with many simulated
 * workers and a large prefix index (no network; the Router and KvIndex the
 * scheduler runs). Run: `npm run bench:routing` (flags: --workers 256
 * --blocks 1000000 --decisions 20000 --prompt-tokens 2048).
 */
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { blockHashes, KvIndex, type WorkerInfo } from "@smollm/cluster-state";
import { Router } from "@smollm/scheduler";
import { LoadScorer } from "../../services/scheduler/src/scorers/load-scorer.ts";
import { KvCapacityScorer } from "../../services/scheduler/src/scorers/kv-scorer.ts";
import { PrefixScorer } from "../../services/scheduler/src/scorers/prefix-scorer.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "256" },
    blocks: { type: "string", default: "1000000" },
    decisions: { type: "string", default: "20000" },
    "prompt-tokens": { type: "string", default: "2048" },
    "block-size": { type: "string", default: "16" },
  },
});
const nWorkers = Number(values.workers);
const nBlocks = Number(values.blocks);
const nDecisions = Number(values.decisions);
const promptTokens = Number(values["prompt-tokens"]);
const blockSize = Number(values["block-size"]);

let seed = 42;
const rand = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};

// Conversations: each a token sequence; workers hold some of them. Enough
// conversations that the index holds ~nBlocks distinct blocks.
const blocksPerConvo = Math.floor(promptTokens / blockSize);
const nConvos = Math.ceil(nBlocks / blocksPerConvo);
const convos: number[][] = [];
const index = new KvIndex();
const t0 = performance.now();
for (let c = 0; c < nConvos; c++) {
  const tokens = Array.from({ length: promptTokens }, () => Math.floor(rand() * 128_000));
  convos.push(tokens);
  index.stored(`w${c % nWorkers}`, blockHashes(tokens, blockSize));
}
const buildMs = performance.now() - t0;

const workers: WorkerInfo[] = Array.from({ length: nWorkers }, (_, i) => ({
  id: `w${i}`, address: `10.0.0.${i}:50052`, model: "m", slots: 16, contextSize: 65536,
  activeSlots: Math.floor(rand() * 16), queued: 0, maxQueue: 64, freeKvTokens: 500_000,
  draining: false, startedAt: 0, updatedAt: Date.now() + 1e9,
}));
const ids = new Set(workers.map((w) => w.id));
const router = new Router({
  scorers: [
    { scorer: new PrefixScorer(), weight: 2 },
    { scorer: new LoadScorer(), weight: 1 },
    { scorer: new KvCapacityScorer(), weight: 0.5 },
  ],
});

const hashUs: number[] = [];
const decideUs: number[] = [];
let hits = 0;
for (let i = 0; i < nDecisions; i++) {
  const convo = convos[Math.floor(rand() * convos.length)] ?? [];
  // A next turn: the conversation plus new tokens.
  const prompt = [...convo, ...Array.from({ length: 64 }, () => Math.floor(rand() * 128_000))];
  const a = performance.now();
  const hashes = blockHashes(prompt, blockSize);
  const b = performance.now();
  const matched = index.match(hashes, (id) => ids.has(id));
  const cachedTokens = new Map([...matched].map(([id, n]) => [id, n * blockSize]));
  const d = router.route({ requestId: String(i), promptTokens: prompt, maxTokens: 256, cachedTokens }, workers, new Set());
  const c = performance.now();
  hashUs.push((b - a) * 1000);
  decideUs.push((c - b) * 1000);
  if (d.expectedCachedTokens > 0) hits++;
}
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
console.log(`routing micro-benchmark: ${nWorkers} workers, ${index.size.toLocaleString()} indexed blocks (built in ${buildMs.toFixed(0)} ms), ${nDecisions} decisions, ${promptTokens + 64}-token prompts`);
console.log("| step | p50 µs | p99 µs |");
console.log("|---|---|---|");
console.log(`| block hashing (${Math.floor((promptTokens + 64) / blockSize)} blocks) | ${pct(hashUs, 50).toFixed(1)} | ${pct(hashUs, 99).toFixed(1)} |`);
console.log(`| index match + scoring + choice | ${pct(decideUs, 50).toFixed(1)} | ${pct(decideUs, 99).toFixed(1)} |`);
console.log(`decisions with a prefix hit: ${((100 * hits) / nDecisions).toFixed(1)}%; decision p99 ${(pct(decideUs, 99) / 1000).toFixed(3)} ms (target ≤ 1 ms)`);
