/**
 * The reliability report, in one command:
 *
 *   npm run bench:reliability                 # fault, bad-input and load tests, then the 20 000-request soak
 *   npm run bench:reliability -- --no-soak    # the tests only (about 5 minutes)
 *   npm run bench:reliability -- --requests 5000 --concurrency 200   # a smaller soak (bench:soak's flags)
 *
 * Runs the fault suite (tests/src/faults-*.test.ts), the bad-input suite and
 * the test soak with SMOLLM_RELIABILITY_OUT set, so each case records what
 * its clients saw; then the soak (bench/src/soak.ts). Prints one table — case
 * | sent | succeeded | failed (by error) | lost | recovery — and writes it
 * with the soak's detail to bench/results/reliability.md. Loopback only,
 * bounded in count and time like the tests. Exit code 1 when a test or a
 * soak check failed.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "@smollm/testkit";
import { parseSoakArgs, soak, soakMarkdown } from "./soak.ts";

const TEST_FILES = [
  "tests/src/faults-workers.test.ts",
  "tests/src/faults-infra.test.ts",
  "tests/src/bad-input.test.ts",
  "tests/src/soak.test.ts",
];

interface Row {
  suite: string;
  case: string;
  sent: number;
  succeeded: number;
  failed: Record<string, number>;
  lost: number;
  recoveryMs?: number;
  expected: string;
  notes?: string;
}

const args = process.argv.slice(2);
const withSoak = !args.includes("--no-soak");
const rowsFile = join(tmpdir(), `smollm-reliability-${process.pid}.jsonl`);
rmSync(rowsFile, { force: true });
const started = Date.now();

console.log(`== tests: ${TEST_FILES.join(" ")}`);
const testOutcome = await new Promise<{ code: number; pass: number; fail: number; failures: string[] }>((resolve) => {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--test", "--test-reporter=spec", "--test-concurrency=1", "--test-timeout=600000", ...TEST_FILES],
    { cwd: REPO_ROOT, env: { ...process.env, SMOLLM_RELIABILITY_OUT: rowsFile }, stdio: ["ignore", "pipe", "inherit"] },
  );
  let pass = 0;
  let fail = 0;
  const failures: string[] = [];
  let buffer = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) {
      // Everything but the services' JSON log lines (failures print their assertion details).
      if (!line.trimStart().startsWith("{")) console.log(line);
      const m = /^ℹ (pass|fail) (\d+)$/.exec(line.trim());
      if (m) {
        if (m[1] === "pass") pass = Number(m[2]);
        else fail = Number(m[2]);
      }
      const f = /^\s*✖ (.*) \(\d/.exec(line);
      if (f?.[1] && !failures.includes(f[1])) failures.push(f[1]);
    }
  });
  child.on("exit", (code) => resolve({ code: code ?? 1, pass, fail, failures }));
});

let soakSection = "";
let soakRows: Row[] = [];
let soakProblems: string[] = [];
if (withSoak) {
  const settings = parseSoakArgs(args.filter((a) => a !== "--no-soak"));
  console.log(`\n== soak: ${settings.requests + settings.overloadRequests + 400} requests`);
  const { report, problems } = await soak(settings, (line) => console.log(line));
  soakProblems = problems;
  soakSection = soakMarkdown(report, settings);
  soakRows = report.phases.map((r) => ({
    suite: "load (bench:soak)",
    case: `${r.phase.name}: ${r.phase.concurrency} concurrent streams`,
    sent: r.summary.sent,
    succeeded: r.summary.ok,
    failed: r.summary.byError,
    lost: r.lost,
    expected: r.phase.expect === "shed" ? "only 429/503 with Retry-After" : "0 errors",
    notes: `${r.summary.requestsPerS.toFixed(0)} req/s, p99 ${Math.round(r.summary.latencyMs.p99)} ms, duplicated ${r.duplicated}, max queued/worker ${r.maxQueuedPerWorker}, ${r.retries} retries`,
  }));
  soakRows.push({
    suite: "load (bench:soak)",
    case: "memory of every process at rest, after the warm-up vs after the whole run",
    sent: 0,
    succeeded: 0,
    failed: {},
    lost: 0,
    expected: "flat (live heap, RSS)",
    notes: report.idle
      .map((m) => {
        const heap = m.heapAtEndMiB - m.heapAfterWarmupMiB;
        const rss = m.rssAtEndMiB - m.rssAfterWarmupMiB;
        return `${m.label} ${Number.isFinite(heap) ? `heap ${heap >= 0 ? "+" : ""}${heap.toFixed(0)} MiB, ` : ""}RSS ${rss >= 0 ? "+" : ""}${rss.toFixed(0)} MiB`;
      })
      .join("; "),
  });
}

let rows: Row[] = [];
try {
  rows = readFileSync(rowsFile, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);
} catch {
  // No test recorded anything (they all failed before measuring).
}
rmSync(rowsFile, { force: true });
rows.push(...soakRows);

const cell = (s: string): string => s.replaceAll("|", "\\|").replaceAll("\n", " ");
const failedCell = (f: Record<string, number>): string =>
  Object.entries(f).map(([k, n]) => `${cell(k)}: ${n}`).join("; ") || "-";
const table = [
  "| suite | case | sent | succeeded | failed (by error) | lost | recovery ms | expected | measured |",
  "|---|---|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${cell(r.suite)} | ${cell(r.case)} | ${r.sent} | ${r.succeeded} | ${failedCell(r.failed)} | ${r.lost} | ${r.recoveryMs === undefined ? "-" : r.recoveryMs} | ${cell(r.expected)} | ${cell(r.notes ?? "")} |`,
  ),
].join("\n");

const verdict =
  testOutcome.code === 0 && soakProblems.length === 0
    ? `All checks passed: ${testOutcome.pass} tests${withSoak ? " and the soak" : ""}.`
    : testOutcome.code !== 0 && testOutcome.pass + testOutcome.fail === 0
      ? `FAILED: the test run ended abnormally (exit ${testOutcome.code}) after: ${testOutcome.failures.join("; ")}${soakProblems.length ? `; soak: ${soakProblems.join("; ")}` : ""}.`
      : `FAILED: ${testOutcome.fail} of ${testOutcome.pass + testOutcome.fail} tests${testOutcome.failures.length ? ` (${testOutcome.failures.join("; ")})` : ""}${soakProblems.length ? `; soak: ${soakProblems.join("; ")}` : ""}.`;
const markdown = [
  "# Reliability report",
  "",
  `Produced by \`npm run bench:reliability${args.length ? ` ${args.join(" ")}` : ""}\` on ${new Date().toISOString().slice(0, 10)} (${(
    (Date.now() - started) /
    60_000
  ).toFixed(0)} min). ${verdict}`,
  "",
  "Lost = no conclusive outcome: a hang past the client's deadline, or a stream that ended without `[DONE]` or an error event. " +
    "For bad input, \"failed\" lists how the requests were refused. Recovery = time until the cluster served normally again by itself (see each row).",
  "",
  table,
  "",
  ...(withSoak ? ["## Soak", "", soakSection, ""] : []),
].join("\n");
console.log(`\n${markdown}`);
const outDir = join(REPO_ROOT, "bench", "results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "reliability.md"), markdown);
console.log(`written to bench/results/reliability.md`);
process.exit(testOutcome.code === 0 && soakProblems.length === 0 ? 0 : 1);
