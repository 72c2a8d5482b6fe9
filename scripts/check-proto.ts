/**
 * Fails when the committed generated code in packages/proto/src/gen differs
 * from what `buf generate` produces from proto/ now (someone edited a .proto
 * without regenerating, or edited generated code by hand). Also runs buf lint.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { REPO_ROOT } from "@smollm/testkit";

const bin = (name: string): string => join(REPO_ROOT, "node_modules", ".bin", name);
const protoDir = join(REPO_ROOT, "proto");
const committed = join(REPO_ROOT, "packages", "proto", "src", "gen");
const out = mkdtempSync(join(tmpdir(), "smollm-proto-"));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

try {
  execFileSync(bin("buf"), ["lint"], { cwd: protoDir, stdio: "inherit" });
  const template = join(out, "buf.gen.yaml");
  const generated = join(out, "gen");
  writeFileSync(
    template,
    readFileSync(join(protoDir, "buf.gen.yaml"), "utf8").replace(/out: .*/, `out: ${generated}`),
  );
  execFileSync(bin("buf"), ["generate", "--template", template], {
    cwd: protoDir,
    stdio: "inherit",
    env: { ...process.env, PATH: `${join(REPO_ROOT, "node_modules", ".bin")}:${process.env["PATH"] ?? ""}` },
  });
  const want = new Map(files(generated).map((f) => [relative(generated, f), readFileSync(f, "utf8")]));
  const have = new Map(files(committed).map((f) => [relative(committed, f), readFileSync(f, "utf8")]));
  const problems: string[] = [];
  for (const [name, text] of want) {
    if (!have.has(name)) problems.push(`missing generated file ${name}`);
    else if (have.get(name) !== text) problems.push(`generated file ${name} is out of date`);
  }
  for (const name of have.keys()) if (!want.has(name)) problems.push(`stale generated file ${name}`);
  if (problems.length > 0) {
    console.error(`proto check failed (run \`npm run proto:generate\`):\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`proto check: ${want.size} generated files match proto/`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
