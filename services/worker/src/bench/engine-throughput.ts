/**
 * Aggregate decode throughput: plain in-process node-llama-cpp ("plain"), the
 * worker's Engine in-process ("engine"), and a worker process called over
 * gRPC from this process ("grpc"), on the same model and context settings.
 * Modes run interleaved round by round so machine noise hits all alike.
 *
 *   node --import tsx services/worker/src/bench/engine-throughput.ts \
 *     [--model tiny] [--modes plain,engine,grpc] [--concurrency 1,4,16] [--tokens 128] [--slots 16] [--rounds 5]
 *
 * Every stream gets its own short random prompt and samples greedily with
 * end-of-generation ignored, so each one produces exactly --tokens tokens.
 * Each round of each mode runs in a fresh child process (modes alternate
 * round by round): measured in one process, the idle contexts of the other
 * modes cost the gRPC mode 20-30 % on a 2-core machine.
 * The grpc mode needs a Redis at redis://127.0.0.1:6379 (it runs without one too).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { createLogger, createRegistry } from "@smollm/common";
import { resolveModel } from "@smollm/model";
import { createClient, WorkerService } from "@smollm/proto";
import { loadConfig } from "../config.ts";
import { Engine } from "../engine.ts";
import { createWorkerMetrics } from "../metrics.ts";
import { loadWorkerModel } from "../model-loader.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "tiny" },
    modes: { type: "string", default: "plain,engine,grpc" },
    concurrency: { type: "string", default: "1,4,16" },
    tokens: { type: "string", default: "128" },
    slots: { type: "string", default: "16" },
    rounds: { type: "string", default: "5" },
    "prompt-tokens": { type: "string", default: "8" },
    "stream-interval-ms": { type: "string", default: "10" },
    child: { type: "boolean", default: false },
  },
});
const levels = values.concurrency.split(",").map(Number);
const modes = values.modes.split(",");
const tokens = Number(values.tokens);
const slots = Number(values.slots);
const rounds = Number(values.rounds);
const promptLength = Number(values["prompt-tokens"]);
const logger = createLogger({ service: "worker-bench", level: "warn" });
const CONTEXT = 4096;
const MEASURE_MS = 2_000;
const config = loadConfig({
  argv: ["--model", values.model, "--slots", String(slots), "--threads", "1", "--context-size", String(CONTEXT),
    "--stream-interval-ms", values["stream-interval-ms"]],
  env: {},
});

function prompts(n: number, vocab: number, round: number): number[][] {
  let x = 12345 + round * 7919;
  const rnd = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) % Math.min(vocab, 1000);
  return Array.from({ length: n }, () => Array.from({ length: promptLength }, rnd));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** Runs n concurrent streams; returns aggregate tokens/s. */
type Runner = { run(n: number, round: number): Promise<number>; close(): Promise<void> };

async function timed(n: number, one: (i: number) => Promise<number>): Promise<number> {
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  const total = counts.reduce((a, b) => a + b, 0);
  if (total !== n * tokens) throw new Error(`expected ${n * tokens} tokens, got ${total}`);
  return total / ((performance.now() - t0) / 1000);
}

async function engineRunner(): Promise<Runner> {
  const metrics = createWorkerMetrics(createRegistry("worker"), slots);
  const loaded = await loadWorkerModel(config, logger, (s, t) => {
    metrics.decodeBatchSequences.observe(s);
    metrics.decodeBatchTokens.observe(t);
  });
  const engine = new Engine({ loaded, metrics, logger, maxQueue: 1024, queueTimeoutMs: 0, streamIntervalMs: config.streamIntervalMs });
  return {
    run: (n, round) => {
      const ps = prompts(n, loaded.vocabSize, round);
      return timed(n, async (i) => {
        let done = 0;
        for await (const e of engine.generate({ promptTokens: ps[i]!, maxTokens: tokens, ignoreEos: true })) {
          if (e.type === "finished") done = e.completionTokens;
        }
        return done;
      });
    },
    close: async () => {
      await engine.close();
      await loaded.close();
    },
  };
}

async function plainRunner(): Promise<Runner> {
  const resolved = await resolveModel({ model: values.model, modelsDir: config.modelsDir, fallback: "none", logger });
  const llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.warn });
  const model = await llama.loadModel({ modelPath: resolved.path });
  const context = await model.createContext({ sequences: slots, contextSize: CONTEXT, batchSize: 512, flashAttention: true, threads: 1 });
  const sequences = Array.from({ length: slots }, () => context.getSequence());
  const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  return {
    run: (n, round) => {
      const ps = prompts(n, vocab, round);
      return timed(n, async (i) => {
        const sequence = sequences[i]!;
        await sequence.clearHistory();
        let done = 0;
        for await (const _ of sequence.evaluate(ps[i]! as Token[], { temperature: 0, yieldEogToken: true })) {
          if (++done >= tokens) break;
        }
        return done;
      });
    },
    close: async () => {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

async function grpcRunner(): Promise<Runner> {
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", main, "--model", values.model, "--slots", String(slots), "--threads", "1",
      "--context-size", String(CONTEXT), "--host", "127.0.0.1", "--grpc-port", "0", "--ops-port", "0",
      "--max-queue", "1024", "--redis-prefix", "bench:", "--log-level", "warn",
      "--stream-interval-ms", values["stream-interval-ms"]],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`worker exited with ${code}`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; grpc_port?: number };
        if (entry.msg === "ready" && entry.grpc_port !== undefined) resolve(entry.grpc_port);
      } catch {
        // not a log line
      }
    });
  });
  const client = createClient(WorkerService, `127.0.0.1:${port}`);
  return {
    run: (n, round) => {
      const ps = prompts(n, 1000, round);
      return timed(n, async (i) => {
        let done = 0;
        for await (const r of client.generate({ promptTokens: ps[i]!, maxTokens: tokens, ignoreEos: true })) {
          if (r.event.case === "finished") done = r.event.value.usage?.completionTokens ?? 0;
        }
        return done;
      });
    },
    close: async () => {
      client.close();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

const factories: Record<string, () => Promise<Runner>> = { plain: plainRunner, engine: engineRunner, grpc: grpcRunner };

if (values.child) {
  // One mode, one round (after a warm-up): print the rates as JSON.
  const factory = factories[modes[0]!];
  if (factory === undefined) throw new Error(`unknown mode ${modes[0]}`);
  const runner = await factory();
  const result: Record<string, number> = {};
  try {
    // Warm up every level (JIT, KV cells), then measure each for at least
    // MEASURE_MS: a single 128-token stream lasts under 100 ms, too short to time alone.
    for (const n of levels) await runner.run(n, 99);
    for (const n of levels) {
      const rates: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < 3 || performance.now() - t0 < MEASURE_MS; i++) rates.push(await runner.run(n, Number(values.rounds) * 100 + i));
      // The harmonic mean of equal-token runs is total tokens / total time.
      result[n] = rates.length / rates.reduce((a, r) => a + 1 / r, 0);
    }
  } finally {
    await runner.close();
  }
  console.log(JSON.stringify(result));
} else {
  const self = fileURLToPath(import.meta.url);
  const rates = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const mode of modes) {
      const args = ["--import", "tsx", self, "--child", "--modes", mode, "--rounds", String(round), "--model", values.model,
        "--concurrency", values.concurrency, "--tokens", values.tokens, "--slots", values.slots, "--prompt-tokens", values["prompt-tokens"],
        "--stream-interval-ms", values["stream-interval-ms"]];
      const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise((resolve) => child.once("exit", resolve));
      if (code !== 0) throw new Error(`${mode} round ${round} exited with ${String(code)}`);
      const result = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, number>;
      for (const n of levels) rates.set(`${mode}@${n}`, [...(rates.get(`${mode}@${n}`) ?? []), result[n]!]);
    }
  }
  for (const n of levels) {
    const cells = modes.map((m) => `${m} ${median(rates.get(`${m}@${n}`) ?? []).toFixed(0).padStart(5)}`);
    const plain = median(rates.get(`plain@${n}`) ?? []);
    const ratios = modes
      .filter((m) => m !== "plain" && Number.isFinite(plain))
      .map((m) => `${m}/plain ${(median(rates.get(`${m}@${n}`)!) / plain).toFixed(2)}`);
    console.log(`concurrency ${String(n).padStart(2)}: ${cells.join("  ")} tok/s (median of ${rounds})   ${ratios.join("  ")}`);
  }
}
