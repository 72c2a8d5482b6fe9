/**
 * Multi-turn, shared-prefix workload against a cluster of W workers, run
 * twice side by side: round-robin routing, then this scheduler's cache-aware
 * routing. Conversations start by Poisson arrivals; each has T turns, each
 * turn waiting for the previous answer; they share a few long system prompts.
 *
 *   npm run bench:routing-workload
 *   npm run bench:routing-workload -- --conversations 64 --turns 6 --workers 3 --rate 4
 *
 * Reports TTFT p50/p99, output tokens/s, prefix-cache hit rate
 * (cached_tokens / prompt_tokens over all requests) and failures, and the
 * ratios cache-aware / round-robin.
 */
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { startLocalCluster } from "@smollm/testkit";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "tiny" },
    workers: { type: "string", default: "3" },
    conversations: { type: "string", default: "64" },
    turns: { type: "string", default: "6" },
    "system-prompts": { type: "string", default: "4" },
    "system-words": { type: "string", default: "600" },
    rate: { type: "string", default: "4" },
    "max-tokens": { type: "string", default: "32" },
    slots: { type: "string", default: "8" },
    "context-size": { type: "string", default: "4096" },
    seed: { type: "string", default: "7" },
  },
});
const W = Number(values.workers);
const C = Number(values.conversations);
const T = Number(values.turns);
const rate = Number(values.rate);
const maxTokens = Number(values["max-tokens"]);

let seed = Number(values.seed);
const rand = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const WORDS = [
  "the", "cluster", "routes", "prompts", "le", "modèle", "répond", "vite", "el", "servidor", "está", "listo",
  "der", "Schlüssel", "größer", "il", "gatto", "è", "qui", "o", "pão", "não", "está", "aqui", "données", "año",
];
const words = (n: number): string => Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(" ");
const systems = Array.from({ length: Number(values["system-prompts"]) }, (_, i) =>
  `/no_think You are assistant #${i} of the support desk. ${words(Number(values["system-words"]))}`,
);
// Fixed script so both runs send the same user turns.
const script = Array.from({ length: C }, (_, c) => ({
  system: systems[c % systems.length] ?? "",
  users: Array.from({ length: T }, () => words(12 + Math.floor(rand() * 20))),
  startMs: 0,
}));
let t = 0;
for (const convo of script) {
  t += (-Math.log(1 - rand()) / rate) * 1000;
  convo.startMs = t;
}

interface Sample {
  turn: number;
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

async function run(policy: "round_robin" | "cache_aware") {
  const cluster = await startLocalCluster({
    workers: W,
    model: values.model,
    privateRedis: true,
    schedulerArgs: ["--policy", policy],
    workerArgs: () => ["--slots", values.slots, "--context-size", values["context-size"], "--threads", "1"],
    logLevel: "error",
  });
  const url = `${cluster.gatewayUrl}/v1/chat/completions`;
  const samples: Sample[] = [];
  let failed = 0;
  const begin = performance.now();
  const conversation = async (convo: (typeof script)[number]): Promise<void> => {
    await new Promise((r) => setTimeout(r, convo.startMs));
    const messages: { role: string; content: string }[] = [{ role: "system", content: convo.system }];
    for (const [turnIndex, user] of convo.users.entries()) {
      messages.push({ role: "user", content: user });
      const start = performance.now();
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "SmolLM3-3B", messages, max_tokens: maxTokens, temperature: 0, stream: true,
            stream_options: { include_usage: true },
          }),
        });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        let ttft = NaN;
        let text = "";
        let usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
        const decoder = new TextDecoder();
        let buf = "";
        for await (const chunk of res.body) {
          buf += decoder.decode(chunk, { stream: true });
          let at: number;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            const event = buf.slice(0, at);
            buf = buf.slice(at + 2);
            if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
            const data = JSON.parse(event.slice(6)) as {
              choices?: { delta?: { content?: string } }[];
              usage?: typeof usage;
              error?: unknown;
            };
            if (data.error) throw new Error("stream error");
            const delta = data.choices?.[0]?.delta?.content;
            if (delta) {
              if (Number.isNaN(ttft)) ttft = performance.now() - start;
              text += delta;
            }
            if (data.usage) usage = data.usage;
          }
        }
        if (!usage) throw new Error("no usage");
        samples.push({
          turn: turnIndex,
          ttftMs: Number.isNaN(ttft) ? performance.now() - start : ttft,
          promptTokens: usage.prompt_tokens,
          cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
          completionTokens: usage.completion_tokens,
        });
        messages.push({ role: "assistant", content: text });
      } catch {
        failed++;
        return;
      }
    }
  };
  try {
    await Promise.all(script.map(conversation));
  } finally {
    await cluster.stop();
  }
  const wall = (performance.now() - begin) / 1000;
  const ttfts = samples.map((s) => s.ttftMs).sort((a, b) => a - b);
  const pct = (p: number): number => ttfts[Math.min(ttfts.length - 1, Math.floor((p / 100) * ttfts.length))] ?? NaN;
  const prompt = samples.reduce((a, s) => a + s.promptTokens, 0);
  const cached = samples.reduce((a, s) => a + s.cachedTokens, 0);
  const out = samples.reduce((a, s) => a + s.completionTokens, 0);
  const byTurn = Array.from({ length: T }, (_, t) => {
    const ss = samples.filter((x) => x.turn === t);
    return ss.reduce((a, x) => a + x.cachedTokens, 0) / Math.max(1, ss.reduce((a, x) => a + x.promptTokens, 0));
  });
  return { policy, requests: samples.length, failed, p50: pct(50), p99: pct(99), tokS: out / wall, hit: cached / Math.max(1, prompt), wall, byTurn };
}

console.log(
  `workload: ${C} conversations × ${T} turns, ${systems.length} shared system prompts (~${values["system-words"]} words), ` +
    `Poisson ${rate}/s, ${maxTokens} tokens/answer, ${W} workers × ${values.slots} slots, model ${values.model}`,
);
const rr = await run("round_robin");
const ca = await run("cache_aware");
console.log("| routing | requests | failed | TTFT p50 ms | TTFT p99 ms | output tok/s | prefix hit rate |");
console.log("|---|---|---|---|---|---|---|");
for (const r of [rr, ca]) {
  console.log(
    `| ${r.policy} | ${r.requests} | ${r.failed} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.tokS.toFixed(0)} | ${(100 * r.hit).toFixed(1)}% |`,
  );
}
console.log(`hit rate by turn: ${[rr, ca].map((r) => `${r.policy} ${r.byTurn.map((h) => `${(100 * h).toFixed(0)}%`).join(" ")}`).join("; ")}`);
console.log(
  `ratios cache-aware / round-robin: TTFT p50 ${(ca.p50 / rr.p50).toFixed(2)} (target ≤ 0.5), TTFT p99 ${(ca.p99 / rr.p99).toFixed(2)}, ` +
    `hit rate ${(ca.hit / Math.max(1e-9, rr.hit)).toFixed(2)}× (target ≥ 3), tok/s ${(ca.tokS / rr.tokS).toFixed(2)}`,
);
