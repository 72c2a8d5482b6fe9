import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));
const node = (args: string[]) => run(process.execPath, ["--import", "tsx", cli, ...args], { cwd: fileURLToPath(new URL("../../..", import.meta.url)) });

test("cli prints the cached model path, copies with --out, and validates", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gguf-cli-test-"));
  try {
    const { stdout } = await node(["--cache-dir", dir, "--layers", "1", "--embedding", "32", "--heads", "2", "--kv-heads", "1"]);
    const path = stdout.trim();
    assert.ok(path.startsWith(dir) && path.endsWith(".gguf"), path);
    assert.ok((await stat(path)).size > 0);
    const out = join(dir, "copy", "m.gguf");
    const copied = await node(["--cache-dir", dir, "--layers", "1", "--embedding", "32", "--heads", "2", "--kv-heads", "1", "--out", out]);
    assert.equal(copied.stdout.trim(), out);
    const v = await node(["--validate", out]);
    const summary = JSON.parse(v.stdout) as { architecture: string; layers: number; embeddingLength: number };
    assert.deepEqual([summary.architecture, summary.layers, summary.embeddingLength], ["smollm3", 1, 32]);
    await assert.rejects(node(["--validate", cli]), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr ?? "", /not a GGUF file/);
      return true;
    });
    await assert.rejects(node(["--layers", "zero"]), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr ?? "", /--layers must be a positive integer/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
