import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { ensureTinyModel } from "./model-cache.ts";
import { TINY_MODEL_GENERATOR_VERSION } from "./tiny-model.ts";

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "gguf-cache-test-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("ensureTinyModel generates once, reuses the file, and names it by options + generator version", async () => {
  await withTmp(async (dir) => {
    const a = await ensureTinyModel({}, dir);
    assert.match(basename(a), new RegExp(`^tiny-smollm3-small-g${TINY_MODEL_GENERATOR_VERSION}-[0-9a-f]{16}\\.gguf$`));
    const first = await stat(a);
    const again = await ensureTinyModel({ layers: 4, vocab: "small" }, dir); // same as defaults
    assert.equal(again, a);
    assert.equal((await stat(again)).mtimeMs, first.mtimeMs);
    const other = await ensureTinyModel({ layers: 2 }, dir);
    assert.notEqual(other, a);
    assert.ok((await stat(other)).size < first.size);
    assert.deepEqual((await readdir(dir)).sort(), [basename(a), basename(other)].sort());
  });
});

test("concurrent callers get the same complete file, with no temporary files left", async () => {
  await withTmp(async (dir) => {
    const paths = await Promise.all([1, 2, 3, 4].map(() => ensureTinyModel({ seed: 9 }, dir)));
    assert.equal(new Set(paths).size, 1);
    assert.deepEqual(await readdir(dir), [basename(paths[0]!)]);
  });
});

test("generation is deterministic: same options give byte-identical files, seeds differ", async () => {
  await withTmp(async (dir) => {
    const a = await ensureTinyModel({ layers: 1 }, join(dir, "a"));
    const b = await ensureTinyModel({ layers: 1 }, join(dir, "b"));
    assert.deepEqual(await readFile(a), await readFile(b));
    const c = await ensureTinyModel({ layers: 1, seed: 2 }, join(dir, "c"));
    assert.notDeepEqual(await readFile(a), await readFile(c));
  });
});

test("invalid options are rejected before anything is written", async () => {
  await withTmp(async (dir) => {
    await assert.rejects(ensureTinyModel({ heads: 3 }, dir), /divisible by heads/);
    await assert.rejects(ensureTinyModel({ kvHeads: 3 }, dir), /divisible by kvHeads/);
    await assert.rejects(ensureTinyModel({ layers: 0 }, dir), /positive integer/);
    assert.deepEqual(await readdir(dir), []);
  });
});
