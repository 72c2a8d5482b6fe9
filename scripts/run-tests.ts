/**
 * `npm test`: typecheck, proto regeneration check, then every test file
 * (unit tests next to the code, integration tests in tests/) with node's test
 * runner. Ends with node's summary and a plain `N passed, N failed` line.
 *
 * Arguments narrow the run: `npm test -- tests/cluster` runs the files whose
 * path contains any argument. `--no-typecheck` skips the first two steps.
 */
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { REPO_ROOT } from "@smollm/testkit";

const args = process.argv.slice(2);
const skipChecks = args.includes("--no-typecheck");
/** A test that hangs fails after this instead of holding CI until its limit. */
const TEST_TIMEOUT_MS = 600_000;
const filters = args.filter((a) => !a.startsWith("--"));

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === "node_modules" || name.startsWith(".")) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return findTests(path);
    return name.endsWith(".test.ts") ? [path] : [];
  });
}

const roots = ["packages", "services", "tests"].map((r) => join(REPO_ROOT, r));
let files = roots.flatMap(findTests).map((f) => relative(REPO_ROOT, f)).sort();
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));

if (!skipChecks) {
  for (const [label, cmd, cmdArgs] of [
    ["typecheck", join(REPO_ROOT, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"]],
    ["proto check", process.execPath, ["--import", "tsx", "scripts/check-proto.ts"]],
  ] as const) {
    console.log(`== ${label}`);
    const r = spawnSync(cmd, [...cmdArgs], { cwd: REPO_ROOT, stdio: "inherit" });
    if (r.status !== 0) {
      console.log(`${label} failed`);
      console.log("0 passed, 1 failed");
      process.exit(1);
    }
  }
}

console.log(`== ${files.length} test files`);
const child = spawn(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", "--test-concurrency=1", `--test-timeout=${TEST_TIMEOUT_MS}`, ...files],
  { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] },
);
let pass = 0;
let fail = 0;
let buffer = "";
child.stdout.on("data", (chunk: Buffer) => {
  process.stdout.write(chunk);
  buffer += chunk.toString("utf8");
  const lines = buffer.split("\n");
  buffer = lines.pop() ?? "";
  for (const line of lines) {
    const m = /^ℹ (pass|fail) (\d+)$/.exec(line.trim());
    if (m) {
      if (m[1] === "pass") pass = Number(m[2]);
      else fail = Number(m[2]);
    }
  }
});
child.on("exit", (code) => {
  console.log(`${pass} passed, ${fail} failed`);
  process.exit(code ?? 1);
});
