/**
 * Block-parallel prefill (docs/parallel-prefill.md), two measurements:
 *
 *   npm run bench:parallel-prefill -- --phase ttft --lengths 32768,128000 --configs single,single2,2,4
 *   npm run bench:parallel-prefill -- --phase error --error-prompts 8 --error-tokens 4096
 *
 * ttft: time to first token of one long prompt through the whole stack
 * (HTTP → gateway → scheduler → workers), max_tokens 1, on the tiny model:
 * one worker with every core (`--threads 2`, exact prefill) versus
 * block-parallel prefill on 2 and 4 worker processes (one thread each). Each
 * configuration gets a fresh cluster. Reports wall time, the workers' total
 * CPU seconds (on a 2-core machine wall-clock parallelism is capped at 2,
 * so CPU seconds show the work saved), KV bytes moved and transfer time.
 *
 * error: the approximation's effect, in process: for many prompts, the
 * next-token distribution after block-parallel prefill (several block sizes
 * and anchors) against exact prefill — KL divergence, total variation, top-1
 * agreement, greedy continuation agreement. The `full` anchor is the
 * exactness check (must be 0). On the tiny random-weight model these numbers
 * describe the machinery and a model with diffuse attention, not SmolLM3-3B.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { renderChatPrompt } from "@smollm/chat";
import { createLogger } from "@smollm/common";
import { loadTokenizer, resolveModel } from "@smollm/model";
import { REPO_ROOT, startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { clearSequence, prefillBlock, releaseBlock } from "../../services/worker/src/block-prefill.ts";
import { loadConfig } from "../../services/worker/src/config.ts";
import { KvAssembler, copyBlock, readSequenceState } from "../../services/worker/src/kv-state-file.ts";
import { loadWorkerModel } from "../../services/worker/src/model-loader.ts";

const { values } = parseArgs({
  options: {
    phase: { type: "string", default: "all" },
    lengths: { type: "string", default: "32768,128000" },
    /** `single` (1 thread), `single2` (2 threads): one worker, exact prefill; a number: block-parallel on that many workers. */
    configs: { type: "string", default: "single,single2,2,4" },
    anchor: { type: "string", default: "4096" },
    "max-block-tokens": { type: "string", default: "0" },
    "error-prompts": { type: "string", default: "8" },
    "error-tokens": { type: "string", default: "4096" },
    "error-blocks": { type: "string", default: "512,1024,2048" },
    "error-anchors": { type: "string", default: "0,256,first-block,full" },
  },
});

const logger = createLogger({ service: "bench", level: "warn" });
const model = await resolveModel({ model: "tiny", modelsDir: join(REPO_ROOT, ".cache/models"), fallback: "tiny", logger });
const resultsDir = join(REPO_ROOT, "bench", "results");
const results: Record<string, unknown> = { startedAt: new Date().toISOString(), machine: { cpus: (await import("node:os")).cpus().length } };

const WORDS = ["alpha", "river", "stone", "quiet", "number", "seven", "bright", "market", "window", "garden", "yellow", "signal", "paper", "forest", "engine", "silver"];
function text(words: number, seed: number): string {
  let x = seed;
  return Array.from({ length: words }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return WORDS[x % WORDS.length];
  }).join(" ");
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based) of the whole line; after "pid (comm) " they are 12 and 13 (1-based).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// ---------------------------------------------------------------- ttft

interface TtftRow {
  promptTokens: number;
  config: string;
  workers: number;
  ttftS: number;
  workerCpuS: number;
  kvBytes: number;
  transferredBytes: number;
  transferMs: number;
  loadMs: number;
  blocks: number;
  failovers: number;
  /** 1-minute load average before and after: this machine is shared, and wall times mean little under load. */
  loadAverage: [number, number];
}

/** POST with node:http: fetch (undici) gives up on headers or body after 300 s, and a 128k-token prefill takes longer. */
function post(url: string, payload: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(payload));
    const req = request(url, { method: "POST", headers: { "content-type": "application/json", "content-length": data.length } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(data);
  });
}

async function promptOf(target: number): Promise<{ content: string; tokens: number }> {
  const tokenizer = await loadTokenizer(model.path);
  try {
    const count = (words: number): number => tokenizer.tokenize(renderChatPrompt([{ role: "user", content: text(words, 42) }])).length;
    let lo = 1;
    let hi = Math.ceil(target / 2);
    while (count(hi) < target) hi *= 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (count(mid) <= target) lo = mid;
      else hi = mid - 1;
    }
    return { content: text(lo, 42), tokens: count(lo) };
  } finally {
    await tokenizer.close?.();
  }
}

async function ttftRun(promptTokens: number, content: string, config: string): Promise<TtftRow> {
  const single = config.startsWith("single");
  const singleThreads = config === "single2" ? 2 : 1;
  const workers = single ? 1 : Number(config);
  const contextSize = Math.ceil((promptTokens + 256) / 1024) * 1024;
  const cluster: LocalCluster = await startLocalCluster({
    workers,
    privateRedis: true,
    logLevel: "info",
    workerArgs: () => [
      "--slots", "1", "--context-size", String(contextSize), "--batch-size", "512",
      "--threads", String(single ? singleThreads : 1),
      "--queue-timeout-ms", "0", "--kv-stall-timeout-ms", "1800000",
    ],
    schedulerArgs: [
      "--parallel-prefill-min-tokens", "16384", "--parallel-prefill-max-workers", String(workers),
      "--parallel-prefill-anchor", values.anchor, "--parallel-prefill-max-block-tokens", values["max-block-tokens"],
      "--parallel-prefill-min-block-tokens", "1024",
    ],
    gatewayArgs: ["--request-timeout-ms", "7200000"],
  });
  try {
    const pids = cluster.workers.map((w) => w.pid);
    const cpuBefore = pids.map(cpuSeconds);
    const loadBefore = loadavg()[0]!;
    const t0 = performance.now();
    const res = await post(`${cluster.gatewayUrl}/v1/chat/completions`, {
      model: "SmolLM3-3B",
      messages: [{ role: "user", content }],
      max_tokens: 1,
      temperature: 0,
      ...(single ? { exact_prefill: true } : {}),
    });
    const ttftS = (performance.now() - t0) / 1000;
    const body = JSON.parse(res.body) as { usage?: { prompt_tokens: number }; error?: unknown };
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.body}`);
    const workerCpuS = pids.map(cpuSeconds).reduce((a, c, i) => a + c - cpuBefore[i]!, 0);
    const line = cluster.workers.flatMap((w) => w.logs).find((l) => l["msg"] === "block-parallel prefill assembled") ?? {};
    const row: TtftRow = {
      promptTokens: body.usage?.prompt_tokens ?? promptTokens,
      config: single ? `single worker, ${singleThreads} thread${singleThreads > 1 ? "s" : ""}, exact` : `block-parallel, ${workers} workers × 1 thread`,
      workers,
      ttftS,
      workerCpuS,
      kvBytes: Number(line["kv_bytes"] ?? 0),
      transferredBytes: Number(line["transferred_bytes"] ?? 0),
      transferMs: Number(line["transfer_ms"] ?? 0),
      loadMs: Number(line["load_ms"] ?? 0),
      blocks: Number(line["blocks"] ?? 0),
      failovers: Number(line["failovers"] ?? 0),
      loadAverage: [loadBefore, loadavg()[0]!],
    };
    console.log(JSON.stringify(row));
    return row;
  } finally {
    await cluster.stop();
  }
}

async function ttftPhase(): Promise<void> {
  const rows: TtftRow[] = [];
  results["ttft"] = { anchor: values.anchor, maxBlockTokens: values["max-block-tokens"], rows };
  for (const length of values.lengths.split(",").map(Number)) {
    const { content, tokens } = await promptOf(length);
    for (const config of values.configs.split(",")) {
      rows.push(await ttftRun(tokens, content, config));
      await save();
    }
  }
  console.log("\n| prompt tokens | configuration | TTFT s | vs single | worker CPU s | KV assembled MB | KV moved MB | transfer ms | load ms | blocks | load avg |");
  console.log("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    // Against the fastest single-worker configuration measured for this prompt.
    const singles = rows.filter((x) => x.promptTokens === r.promptTokens && x.workers === 1);
    const single = singles.length === 0 ? undefined : singles.reduce((x, y) => (y.ttftS < x.ttftS ? y : x));
    const ratio = single === undefined ? "" : `${(r.ttftS / single.ttftS).toFixed(2)}×`;
    console.log(
      `| ${r.promptTokens} | ${r.config} | ${r.ttftS.toFixed(1)} | ${ratio} | ${r.workerCpuS.toFixed(1)} | ${(r.kvBytes / 1e6).toFixed(1)} | ${(r.transferredBytes / 1e6).toFixed(1)} | ${r.transferMs} | ${r.loadMs} | ${r.blocks || ""} | ${r.loadAverage.map((x) => x.toFixed(1)).join("→")} |`,
    );
  }
}

// ---------------------------------------------------------------- error

interface ErrorStat {
  blockTokens: number;
  anchor: string;
  kl: number[];
  tv: number[];
  top1: number[];
  greedyMatch: number[];
}

async function errorPhase(): Promise<void> {
  const n = Number(values["error-tokens"]);
  const prompts = Number(values["error-prompts"]);
  const blockSizes = values["error-blocks"].split(",").map(Number);
  const anchors = values["error-anchors"].split(",");
  const loaded = await loadWorkerModel(
    loadConfig({ argv: ["--model", "tiny", "--slots", "3", "--context-size", String(n + 128), "--batch-size", "512", "--threads", "1"], env: {} }),
    logger,
  );
  const dir = await mkdtemp(join(tmpdir(), "smollm-bench-error-"));
  const [a, b] = Array.from({ length: 2 }, () => loaded.context.getSequence()) as [LlamaContextSequence, LlamaContextSequence];
  const tokenize = (s: string): number[] => loaded.model.tokenize(s, false, "trimLeadingSpace") as number[];
  const FULL = { temperature: 1, topK: 0, topP: 1, minP: 0 } as const;
  const distribution = async (seq: LlamaContextSequence, last: number): Promise<Map<Token, number>> => {
    const out = await seq.controlledEvaluate([[last as Token, { generateNext: { probabilities: true, options: FULL } }]]);
    await seq.eraseContextTokenRanges([{ start: seq.nextTokenIndex - 1, end: seq.nextTokenIndex }]);
    return out[0]!.next!.probabilities!;
  };
  const greedy = async (seq: LlamaContextSequence, last: number): Promise<number[]> => {
    const tokens: number[] = [];
    for await (const t of seq.evaluate([last as Token], { temperature: 0, yieldEogToken: true })) {
      tokens.push(t);
      if (tokens.length >= 16) break;
    }
    return tokens;
  };
  const stats = new Map<string, ErrorStat>();
  try {
    for (let p = 0; p < prompts; p++) {
      // Half structured text (the chat format around repetitive words), half random tokens.
      let tokens: number[];
      if (p % 2 === 0) {
        tokens = tokenize(renderChatPrompt([{ role: "user", content: text(n, 1000 + p) }])).slice(0, n);
      } else {
        let x = 77 + p;
        tokens = Array.from({ length: n }, () => {
          x = (x * 1103515245 + 12345) >>> 0;
          return 100 + (x % 900);
        });
      }
      const cells = tokens.slice(0, -1);
      const last = tokens[tokens.length - 1]!;
      await clearSequence(a);
      await a.evaluateWithoutGeneratingNewTokens(cells as Token[]);
      const exact = await distribution(a, last);
      const exactGreedy = await greedy(a, last);
      for (const blockTokens of blockSizes) {
        for (const anchor of anchors) {
          const key = `${blockTokens}/${anchor}`;
          const bounds: number[] = [];
          for (let s = 0; s < cells.length; s += blockTokens) bounds.push(s);
          bounds.push(cells.length);
          const anchorOf = (start: number): number[] =>
            anchor === "full" ? cells.slice(0, start) : cells.slice(0, Math.min(start, anchor === "first-block" ? blockTokens : Number(anchor)));
          const path = join(dir, "assembled.state");
          const assembler = new KvAssembler(path, cells, loaded.context.totalSequences);
          for (let i = 0; i + 1 < bounds.length; i++) {
            const block = { anchorTokens: anchorOf(bounds[i]!), blockTokens: cells.slice(bounds[i]!, bounds[i + 1]!), blockStart: bounds[i]! };
            await prefillBlock(loaded.context, b, block, { stepTokens: 512, signal: new AbortController().signal });
            const file = join(dir, `block-${i}.state`);
            await b.saveStateToFile(file);
            await releaseBlock(b, block);
            await copyBlock(await readSequenceState(file), bounds[i]!, bounds[i + 1]! - bounds[i]!, assembler, i);
            await rm(file);
          }
          await assembler.finish();
          await b.loadStateFromFile(path, { acceptRisk: true });
          const approx = await distribution(b, last);
          const approxGreedy = await greedy(b, last);
          await clearSequence(b);
          let kl = 0;
          let tv = 0;
          let topExact: [number, number] = [-1, -1];
          let topApprox: [number, number] = [-1, -1];
          for (const [t, pe] of exact) {
            const pa = approx.get(t) ?? 0;
            if (pe > 0) kl += pe * Math.log(pe / Math.max(pa, 1e-30));
            tv += Math.abs(pe - pa) / 2;
            if (pe > topExact[1]) topExact = [t, pe];
          }
          for (const [t, pa] of approx) if (pa > topApprox[1]) topApprox = [t, pa];
          let match = 0;
          while (match < exactGreedy.length && exactGreedy[match] === approxGreedy[match]) match++;
          const s = stats.get(key) ?? { blockTokens, anchor, kl: [], tv: [], top1: [], greedyMatch: [] };
          s.kl.push(Math.max(0, kl));
          s.tv.push(tv);
          s.top1.push(topExact[0] === topApprox[0] ? 1 : 0);
          s.greedyMatch.push(match);
          stats.set(key, s);
        }
      }
      console.log(`prompt ${p + 1}/${prompts} done`);
    }
  } finally {
    await loaded.close();
    await rm(dir, { recursive: true, force: true });
  }
  const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / Math.max(1, xs.length);
  const rows = [...stats.values()].map((s) => ({
    blockTokens: s.blockTokens,
    anchor: s.anchor,
    prompts: s.kl.length,
    klMean: mean(s.kl),
    klMax: Math.max(...s.kl),
    tvMean: mean(s.tv),
    top1Agreement: mean(s.top1),
    greedyMatchMean: mean(s.greedyMatch),
  }));
  results["error"] = { promptTokens: n, prompts, rows };
  console.log(`\nApproximation error vs exact prefill (${prompts} prompts of ${n} tokens; greedy match out of 16 tokens)\n`);
  console.log("| block tokens | anchor | KL mean (nats) | KL max | TV mean | top-1 agreement | greedy match |");
  console.log("|---:|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.blockTokens} | ${r.anchor} | ${r.klMean.toExponential(2)} | ${r.klMax.toExponential(2)} | ${r.tvMean.toExponential(2)} | ${(100 * r.top1Agreement).toFixed(0)}% | ${r.greedyMatchMean.toFixed(1)} |`,
    );
  }
}

async function save(): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, `parallel-prefill-${String(results["startedAt"]).replace(/[:.]/g, "-")}.json`), JSON.stringify(results, null, 2));
}

if (values.phase === "error" || values.phase === "all") await errorPhase();
await save();
if (values.phase === "ttft" || values.phase === "all") await ttftPhase();
await save();
