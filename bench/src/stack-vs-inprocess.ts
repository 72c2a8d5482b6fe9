/**
 * Whole stack vs node-llama-cpp in-process, side by side in one run, on the
 * same model, context size, slot count and threads: aggregate output tokens/s
 * and time to first token at 1, 4 and 16 concurrent streams of N tokens.
 *
 *   npm run bench                       # tiny model, 16 slots, 128 tokens/stream
 *   npm run bench -- --model tiny:llama3 --tokens 64 --concurrency 1,4,16
 *
 * Stack: HTTP (SSE) → gateway → scheduler (route) → one worker process, with
 * the scheduler and Redis in the path as in production. In-process: one
 * LlamaContext with the same sequences, each stream a `sequence.evaluate`
 * loop. Both ignore end-of-generation so every stream produces N tokens.
 */
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { renderChatPrompt } from "@smollm/chat";
import { resolveModel } from "@smollm/model";
import { createLogger } from "@smollm/common";
import { startLocalCluster } from "@smollm/testkit";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "tiny" },
    slots: { type: "string", default: "16" },
    "context-size": { type: "string", default: "1024" },
    threads: { type: "string", default: "1" },
    tokens: { type: "string", default: "128" },
    concurrency: { type: "string", default: "1,4,16" },
    rounds: { type: "string", default: "3" },
  },
});
const slots = Number(values.slots);
const contextSize = Number(values["context-size"]);
const threads = Number(values.threads);
const tokensPerStream = Number(values.tokens);
const levels = values.concurrency.split(",").map(Number);
const rounds = Number(values.rounds);

const logger = createLogger({ service: "bench", level: "warn" });
const model = await resolveModel({ model: values.model, modelsDir: ".cache/models", fallback: "tiny", logger });
// Every stream of every round gets its own prompt (a nonce early in the
// system message), so neither side reuses KV from an earlier round: the
// comparison is of serving, not of caching.
const messagesFor = (nonce: string) => [
  { role: "system" as const, content: `/no_think [${nonce}] Tu es un poète.` },
  { role: "user" as const, content: "Écris un poème sur la mer, s'il te plaît." },
];
let nonces = 0;
// Sampled, not greedy, on both sides: greedy decoding of the random tiny
// model keeps picking a token with no text (an end-of-turn token, generated
// with ignore_eos), so the stack would stream no text until the end and its
// time to first text would be the whole generation's.
const SAMPLING = { temperature: 0.8 } as const;
const nextNonce = (): string => `n${(nonces++).toString(36)}`;

interface Result {
  tokS: number;
  ttftMs: number;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function inProcess(): Promise<Map<number, Result>> {
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.error });
  const m = await llama.loadModel({ modelPath: model.path });
  const context = await m.createContext({ sequences: slots, contextSize, threads, flashAttention: true });
  const pool = Array.from({ length: slots }, () => context.getSequence());
  const out = new Map<number, Result>();
  for (const c of levels) {
    const runs: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      const seqs = pool.slice(0, c);
      // Start cold, like a new conversation on the stack (no prefix reuse either side).
      await Promise.all(seqs.map((seq) => seq.clearHistory()));
      const start = performance.now();
      const ttfts: number[] = [];
      let total = 0;
      await Promise.all(
        seqs.map(async (seq) => {
          let n = 0;
          const promptTokens = m.tokenize(renderChatPrompt(messagesFor(nextNonce())), true) as Token[];
          for await (const _token of seq.evaluate(promptTokens, { temperature: SAMPLING.temperature, seed: nonces, yieldEogToken: true })) {
            void _token;
            if (n === 0) ttfts.push(performance.now() - start);
            if (++n >= tokensPerStream) break;
          }
          total += n;
        }),
      );
      const wall = (performance.now() - start) / 1000;
      runs.push({ tokS: total / wall, ttftMs: median(ttfts) });
    }
    out.set(c, { tokS: median(runs.map((x) => x.tokS)), ttftMs: median(runs.map((x) => x.ttftMs)) });
  }
  await context.dispose();
  await m.dispose();
  await llama.dispose();
  return out;
}

async function stack(): Promise<Map<number, Result>> {
  const cluster = await startLocalCluster({
    workers: 1,
    model: values.model,
    privateRedis: true,
    workerArgs: () => ["--slots", String(slots), "--context-size", String(contextSize), "--threads", String(threads)],
    logLevel: "error",
  });
  const url = `${cluster.gatewayUrl}/v1/chat/completions`;
  const bodyFor = (nonce: string): string =>
    JSON.stringify({
      model: "SmolLM3-3B",
      messages: messagesFor(nonce),
      max_tokens: tokensPerStream,
      temperature: SAMPLING.temperature,
      seed: nonces,
      stream: true,
      ignore_eos: true,
      stream_options: { include_usage: true },
    });
  const one = async (start: number): Promise<{ ttft: number; tokens: number }> => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: bodyFor(nextNonce()) });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    let ttft = NaN;
    let tokens = 0;
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of res.body) {
      if (Number.isNaN(ttft)) ttft = performance.now() - start;
      buf += decoder.decode(chunk, { stream: true });
      const at = buf.lastIndexOf("\n\n");
      if (at < 0) continue;
      for (const event of buf.slice(0, at).split("\n\n")) {
        const m = /"completion_tokens":(\d+)/.exec(event);
        if (m) tokens = Number(m[1]);
      }
      buf = buf.slice(at + 2);
    }
    return { ttft, tokens };
  };
  const out = new Map<number, Result>();
  try {
    await one(performance.now()); // warm-up: connections, JIT
    for (const c of levels) {
      const runs: Result[] = [];
      for (let r = 0; r < rounds; r++) {
        const start = performance.now();
        const results = await Promise.all(Array.from({ length: c }, () => one(start)));
        const wall = (performance.now() - start) / 1000;
        const total = results.reduce((a, x) => a + x.tokens, 0);
        if (total !== c * tokensPerStream) throw new Error(`expected ${c * tokensPerStream} tokens, got ${total}`);
        runs.push({ tokS: total / wall, ttftMs: median(results.map((x) => x.ttft)) });
      }
      out.set(c, { tokS: median(runs.map((x) => x.tokS)), ttftMs: median(runs.map((x) => x.ttftMs)) });
    }
  } finally {
    await cluster.stop();
  }
  return out;
}

console.log(
  `model ${model.name} (${model.path}), ${slots} slots, context ${contextSize}/slot, threads ${threads}, ` +
    `${tokensPerStream} tokens/stream, median of ${rounds} rounds`,
);
const base = await inProcess();
const full = await stack();
console.log("| streams | in-process tok/s | stack tok/s | stack / in-process | in-process TTFT ms | stack TTFT ms |");
console.log("|---|---|---|---|---|---|");
for (const c of levels) {
  const a = base.get(c);
  const b = full.get(c);
  if (!a || !b) continue;
  console.log(
    `| ${c} | ${a.tokS.toFixed(0)} | ${b.tokS.toFixed(0)} | ${(b.tokS / a.tokS).toFixed(2)} | ${a.ttftMs.toFixed(1)} | ${b.ttftMs.toFixed(1)} |`,
  );
}
