/**
 * llama.cpp flash attention on or off, side by side in one run on the same
 * model: from-scratch prefill, incremental prefill after a cached prefix (a
 * conversation's next turn) and decode speed with a long history, on one
 * context of node-llama-cpp. The worker's `--flash-attention` (default on)
 * decides this for every slot; workers exchanging KV must agree on it.
 *
 *   npm run bench:flash-attention
 *   npm run bench:flash-attention -- --model tiny:llama3 --past 1500 --threads 2
 */
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { resolveModel } from "@smollm/model";
import { createLogger } from "@smollm/common";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "tiny" },
    threads: { type: "string", default: "1" },
    past: { type: "string", default: "600" },
    added: { type: "string", default: "46" },
    streams: { type: "string", default: "4" },
    tokens: { type: "string", default: "128" },
    rounds: { type: "string", default: "3" },
  },
});
const threads = Number(values.threads);
const past = Number(values.past);
const added = Number(values.added);
const streams = Number(values.streams);
const tokens = Number(values.tokens);
const rounds = Number(values.rounds);
const contextSize = Math.max(1024, past + added + tokens + 64);

const logger = createLogger({ service: "bench", level: "warn" });
const model = await resolveModel({ model: values.model, modelsDir: ".cache/models", fallback: "tiny", logger });
const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.error });
const m = await llama.loadModel({ modelPath: model.path });
const ordinary = (n: number, seed: number): Token[] =>
  Array.from({ length: n }, (_, i) => (100 + ((seed * 131 + i * 17) % 500)) as Token);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface Row {
  prefillMs: number;
  incrementalMs: number;
  decodeTokS: number;
}
async function measure(flashAttention: boolean): Promise<Row> {
  const context = await m.createContext({ sequences: streams, contextSize, threads, flashAttention });
  const seqs = Array.from({ length: streams }, () => context.getSequence());
  const [first] = seqs;
  if (first === undefined) throw new Error("no sequence");
  const prefill: number[] = [];
  const incremental: number[] = [];
  const decode: number[] = [];
  for (let r = 0; r < rounds; r++) {
    await first.clearHistory();
    let t = performance.now();
    await first.evaluateWithoutGeneratingNewTokens(ordinary(past + added, r));
    prefill.push(performance.now() - t);
    await first.clearHistory();
    await first.evaluateWithoutGeneratingNewTokens(ordinary(past, r));
    t = performance.now();
    await first.evaluateWithoutGeneratingNewTokens(ordinary(added, r + 100));
    incremental.push(performance.now() - t);
    await Promise.all(seqs.map((s) => s.clearHistory()));
    await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(ordinary(past, r * 10 + i))));
    t = performance.now();
    await Promise.all(
      seqs.map(async (s, i) => {
        let n = 0;
        for await (const _ of s.evaluate(ordinary(1, r * 10 + i + 7), { temperature: 0 })) if (++n >= tokens) break;
      }),
    );
    decode.push((streams * tokens) / ((performance.now() - t) / 1000));
  }
  await context.dispose();
  return { prefillMs: median(prefill), incrementalMs: median(incremental), decodeTokS: median(decode) };
}

const off = await measure(false);
const on = await measure(true);
console.log(`model ${model.path}, threads ${threads}, median of ${rounds} rounds`);
console.log("| flash attention | prefill of " + (past + added) + " tokens (ms) | +" + added + " tokens after " + past + " cached (ms) | decode, " + streams + " streams at ~" + past + " past (tok/s) |");
console.log("|---|---|---|---|");
for (const [name, r] of [["off", off], ["on", on]] as const) {
  console.log(`| ${name} | ${r.prefillMs.toFixed(1)} | ${r.incrementalMs.toFixed(1)} | ${r.decodeTokS.toFixed(0)} |`);
}
console.log(
  `on / off: prefill ${(on.prefillMs / off.prefillMs).toFixed(2)}× time, incremental prefill ${(on.incrementalMs / off.incrementalMs).toFixed(2)}× time, decode ${(on.decodeTokS / off.decodeTokS).toFixed(2)}× speed`,
);
await m.dispose();
