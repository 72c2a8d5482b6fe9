/**
 * The load soak: 20 000 streaming requests against three workers of the tiny
 * model on loopback, most at 500 concurrent streams (below saturation: every
 * one must succeed), then an overload at 1 000 concurrent (only clean 429/503
 * with Retry-After allowed, queues bounded), then recovery. Every answer is
 * checked (none lost, none duplicated, none crossed), and the RSS of every
 * process is sampled each second and reported over time.
 *
 *   npm run bench:soak
 *   npm run bench:soak -- --requests 5000 --concurrency 200 --time-limit-s 300
 *
 * Bounded in count and time: each phase stops starting requests at its time
 * limit (the steady phase gets `--time-limit-s`), each request has a 120 s
 * client deadline. Exit code 1 when a check fails.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { runSoak, type SoakClusterOptions, type SoakPhase, type SoakPhaseResult, type SoakReport } from "@smollm/testkit";

/** Settings of a soak run. */
export interface SoakSettings {
  requests: number;
  concurrency: number;
  overloadConcurrency: number;
  overloadRequests: number;
  workers: number;
  slots: number;
  maxQueue: number;
  maxTokens: number;
  timeLimitS: number;
}

export const SOAK_DEFAULTS: SoakSettings = {
  // 20 000 in all: 16 800 steady + 3 000 overload + 200 recovery.
  requests: 16_800,
  concurrency: 500,
  overloadConcurrency: 1_000,
  overloadRequests: 3_000,
  workers: 3,
  // 3 × (32 slots + 160 queued) = 576 ≥ 500: below saturation.
  slots: 32,
  maxQueue: 160,
  maxTokens: 8,
  timeLimitS: 900,
};

export function soakPlan(s: SoakSettings): { cluster: SoakClusterOptions; phases: SoakPhase[] } {
  return {
    cluster: { workers: s.workers, slots: s.slots, maxQueue: s.maxQueue, contextSize: 512 },
    phases: [
      { name: "warm-up", concurrency: 50, total: 200, timeLimitMs: 60_000, maxTokens: s.maxTokens, expect: "no_errors" },
      { name: "steady", concurrency: s.concurrency, total: s.requests, timeLimitMs: s.timeLimitS * 1000, maxTokens: s.maxTokens, expect: "no_errors" },
      {
        name: "overload",
        concurrency: s.overloadConcurrency,
        total: s.overloadRequests,
        timeLimitMs: 180_000,
        maxTokens: s.maxTokens,
        expect: "shed",
        pauseAfterShedMs: 250,
      },
      { name: "recovery", concurrency: 20, total: 200, timeLimitMs: 60_000, maxTokens: s.maxTokens, expect: "no_errors" },
    ],
  };
}

/** Problems a soak found; empty when it passed. */
export function soakProblems(report: SoakReport, maxQueue: number): string[] {
  const problems: string[] = [];
  for (const r of report.phases) {
    const name = r.phase.name;
    if (r.lost > 0) problems.push(`${name}: ${r.lost} lost`);
    if (r.duplicated !== 0) problems.push(`${name}: ${r.duplicated} duplicated generations`);
    if (r.summary.mismatched > 0) problems.push(`${name}: ${r.summary.mismatched} answers with another request's id`);
    if (r.gatewayCountDelta !== 0) problems.push(`${name}: the gateway counted ${r.gatewayCountDelta} more requests than were sent`);
    if (Object.keys(r.unexpected).length > 0) problems.push(`${name}: unexpected answers ${JSON.stringify(r.unexpected)}`);
    if (r.maxQueuedPerWorker > maxQueue) problems.push(`${name}: ${r.maxQueuedPerWorker} queued on one worker (bound ${maxQueue})`);
    if (r.shed !== r.shedWithRetryAfter) problems.push(`${name}: ${r.shed - r.shedWithRetryAfter} shed answers without Retry-After`);
    if (r.phase.expect === "no_errors" && r.busyAfter !== 0) problems.push(`${name}: ${r.busyAfter} slots or queue entries left busy`);
  }
  const steady = report.phases.find((p) => p.phase.name === "steady");
  if (steady && steady.summary.sent < steady.phase.total) problems.push(`steady: time limit reached after ${steady.summary.sent} of ${steady.phase.total} requests`);
  const overload = report.phases.find((p) => p.phase.name === "overload");
  if (overload && overload.shed === 0) problems.push("overload: nothing was shed (not above saturation)");
  problems.push(...memoryProblems(report));
  return problems;
}

/**
 * Flat memory: at rest after the run, compared with at rest after the
 * warm-up (see IdleMemory), every Node process's live heap within 8 MiB or
 * 10 % (a leak shows here) and its RSS within 64 MiB (RSS follows V8's and
 * the allocator's sizing, not only live data); Redis within 16 MiB + 10 % RSS.
 */
export function memoryProblems(report: SoakReport): string[] {
  const problems: string[] = [];
  for (const m of report.idle) {
    const heapGrowth = m.heapAtEndMiB - m.heapAfterWarmupMiB;
    const rssGrowth = m.rssAtEndMiB - m.rssAfterWarmupMiB;
    if (Number.isFinite(heapGrowth)) {
      if (heapGrowth > Math.max(8, 0.1 * m.heapAfterWarmupMiB)) {
        problems.push(`${m.label}: live heap at rest grew ${heapGrowth.toFixed(1)} MiB (${m.heapAfterWarmupMiB.toFixed(0)} → ${m.heapAtEndMiB.toFixed(0)})`);
      }
      if (rssGrowth > 64) problems.push(`${m.label}: RSS at rest grew ${rssGrowth.toFixed(1)} MiB`);
    } else if (rssGrowth > 16 + 0.1 * m.rssAfterWarmupMiB) {
      problems.push(`${m.label}: RSS at rest grew ${rssGrowth.toFixed(1)} MiB (${m.rssAfterWarmupMiB.toFixed(0)} → ${m.rssAtEndMiB.toFixed(0)})`);
    }
  }
  return problems;
}

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
const num = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : "-");
const signed = (n: number): string => `${n >= 0 ? "+" : ""}${n.toFixed(1)}`;

function phaseRow(r: SoakPhaseResult): string {
  const failed = Object.entries(r.summary.byError).map(([k, n]) => `${k} ${n}`).join(", ") || "-";
  return `| ${r.phase.name} | ${r.phase.concurrency} | ${fmt(r.summary.sent)} | ${fmt(r.summary.ok)} | ${failed} | ${r.lost} | ${r.duplicated} | ${r.retries} | ${r.summary.requestsPerS.toFixed(0)} | ${fmt(r.summary.latencyMs.p50)} / ${fmt(r.summary.latencyMs.p99)} | ${r.maxQueuedPerWorker} | ${r.busyAfter} |`;
}

/** The soak as markdown: phases, RSS trend, RSS over time. */
export function soakMarkdown(report: SoakReport, settings: SoakSettings): string {
  const lines: string[] = [];
  lines.push(
    `${settings.workers} workers × (${settings.slots} slots + ${settings.maxQueue} queued), tiny model, ${settings.maxTokens} tokens per streamed completion, loopback; ${(report.durationMs / 1000).toFixed(0)} s in all.`,
    "",
    "| phase | concurrent | sent | succeeded | failed (by error) | lost | duplicated | retries | req/s | latency p50 / p99 ms | max queued / worker | busy slots after |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...report.phases.map(phaseRow),
    "",
    "Memory at rest, after the warm-up and after the whole run (live heap: V8 heap used right after a full collection, forced by a heap snapshot; RSS: mean over 3 idle seconds after it):",
    "",
    "| process | live heap after warm-up (MiB) | live heap at the end (MiB) | growth | RSS after warm-up (MiB) | RSS at the end (MiB) | growth |",
    "|---|---|---|---|---|---|---|",
    ...report.idle.map(
      (m) =>
        `| ${m.label} | ${num(m.heapAfterWarmupMiB)} | ${num(m.heapAtEndMiB)} | ${Number.isFinite(m.heapAtEndMiB - m.heapAfterWarmupMiB) ? signed(m.heapAtEndMiB - m.heapAfterWarmupMiB) : "-"} | ${num(m.rssAfterWarmupMiB)} | ${num(m.rssAtEndMiB)} | ${signed(m.rssAtEndMiB - m.rssAfterWarmupMiB)} |`,
    ),
    "",
    `Memory under load, over the ${report.memoryWindow.phase} phase (${(report.memoryWindow.fromMs / 1000).toFixed(0)}–${(report.memoryWindow.toMs / 1000).toFixed(0)} s; RSS: mean of the first and last quarter after the first 20 %; live heap: lowest V8 heap used in each half):`,
    "",
    "| process | RSS early (MiB) | RSS late (MiB) | RSS growth | RSS peak | live heap early (MiB) | live heap late (MiB) | live heap growth |",
    "|---|---|---|---|---|---|---|---|",
    ...report.memory.map(
      (t) =>
        `| ${t.label} | ${t.earlyMiB.toFixed(0)} | ${t.lateMiB.toFixed(0)} | ${signed(t.growthMiB)} | ${t.peakMiB.toFixed(0)} | ${num(t.heapLiveEarlyMiB)} | ${num(t.heapLiveLateMiB)} | ${Number.isFinite(t.heapLiveGrowthMiB) ? signed(t.heapLiveGrowthMiB) : "-"} |`,
    ),
    "",
    "RSS over the whole run (MiB):",
    "",
  );
  // RSS over time: about 12 samples across the run.
  const labels = [...new Set(report.rssSamples.flatMap((x) => Object.keys(x.rss)))];
  const step = Math.max(1, Math.floor(report.rssSamples.length / 12));
  lines.push(`| t (s) | ${labels.join(" | ")} |`, `|---|${labels.map(() => "---").join("|")}|`);
  for (let i = 0; i < report.rssSamples.length; i += step) {
    const s = report.rssSamples[i];
    if (s === undefined) continue;
    lines.push(`| ${(s.atMs / 1000).toFixed(0)} | ${labels.map((l) => (s.rss[l] === undefined ? "-" : (s.rss[l] / 2 ** 20).toFixed(0))).join(" | ")} |`);
  }
  return lines.join("\n");
}

export async function soak(settings: SoakSettings, log: (line: string) => void): Promise<{ report: SoakReport; problems: string[] }> {
  const plan = soakPlan(settings);
  const report = await runSoak(plan.cluster, plan.phases, { log, requestTimeoutMs: 120_000 });
  return { report, problems: soakProblems(report, settings.maxQueue) };
}

export function parseSoakArgs(argv: readonly string[]): SoakSettings {
  const { values } = parseArgs({
    args: [...argv],
    strict: false,
    options: {
      requests: { type: "string" },
      concurrency: { type: "string" },
      "overload-concurrency": { type: "string" },
      "overload-requests": { type: "string" },
      workers: { type: "string" },
      slots: { type: "string" },
      "max-queue": { type: "string" },
      "max-tokens": { type: "string" },
      "time-limit-s": { type: "string" },
    },
  });
  const n = (v: unknown, d: number): number => (typeof v === "string" && v !== "" ? Number(v) : d);
  const d = SOAK_DEFAULTS;
  return {
    requests: n(values["requests"], d.requests),
    concurrency: n(values["concurrency"], d.concurrency),
    overloadConcurrency: n(values["overload-concurrency"], d.overloadConcurrency),
    overloadRequests: n(values["overload-requests"], d.overloadRequests),
    workers: n(values["workers"], d.workers),
    slots: n(values["slots"], d.slots),
    maxQueue: n(values["max-queue"], d.maxQueue),
    maxTokens: n(values["max-tokens"], d.maxTokens),
    timeLimitS: n(values["time-limit-s"], d.timeLimitS),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const settings = parseSoakArgs(process.argv.slice(2));
  const { report, problems } = await soak(settings, (line) => console.log(line));
  console.log(`\n${soakMarkdown(report, settings)}\n`);
  if (problems.length > 0) {
    console.log(`FAILED:\n  - ${problems.join("\n  - ")}`);
    process.exit(1);
  }
  console.log("passed: none lost, none duplicated, no error below saturation, clean shedding above it, memory flat");
}
