import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "@smollm/common";
import { ApiKeyStore, ApiKeysFileError, hashApiKey, parseApiKeys } from "./api-keys.ts";

const A = hashApiKey("sk-a");
const B = hashApiKey("sk-b");

test("hashApiKey is the SHA-256 of the key's UTF-8 bytes (sha256sum's output)", () => {
  // printf %s abc | sha256sum
  assert.equal(hashApiKey("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("line format: bare hash, named, limits, comments and blank lines", () => {
  const keys = parseApiKeys(
    [
      "# tenants",
      `sha256:${A}`,
      "",
      `team-b:sha256:${B.toUpperCase()}:120:4   # upper-case hex is fine`,
      `ci:sha256:${hashApiKey("sk-c")}::2`,
    ].join("\n"),
  );
  assert.deepEqual(keys.map((k) => [k.name, k.rpm, k.maxStreams]), [
    [`key-${A.slice(0, 8)}`, undefined, undefined],
    ["team-b", 120, 4],
    ["ci", undefined, 2],
  ]);
  assert.equal(keys[1]?.sha256, B);
});

test("JSON format with burst and disabled keys; the bare array too", () => {
  const keys = parseApiKeys(JSON.stringify({ keys: [{ name: "a", sha256: `sha256:${A}`, rpm: 60, burst: 5, max_streams: 1 }, { name: "b", sha256: B, disabled: true }] }));
  assert.deepEqual(keys[0], { name: "a", sha256: A, rpm: 60, burst: 5, maxStreams: 1, disabled: false });
  assert.equal(keys[1]?.disabled, true);
  assert.equal(parseApiKeys(`[{"sha256":"${A}"}]`).length, 1);
});

test("plain keys, bad limits, duplicates and unknown fields are refused, all at once", () => {
  assert.throws(
    () => parseApiKeys(["sk-plain-key-not-hashed", `x:sha256:${A}:-1`, `x:sha256:${B}:1:2:3`, `y:sha256:${A}`].join("\n")),
    (error: unknown) => {
      assert.ok(error instanceof ApiKeysFileError);
      const text = error.problems.join("\n");
      assert.match(text, /line 1: expected \[name:\]sha256.*store hashes, not keys/);
      assert.match(text, /line 2: rpm must be a non-negative integer/);
      assert.match(text, /line 3: too many fields/);
      assert.match(text, /duplicate name "x"/);
      assert.match(text, /the same hash appears twice/);
      return true;
    },
  );
  assert.throws(() => parseApiKeys(`{"keys":[{"sha256":"${A}","rmp":5}]}`), /unknown field "rmp"/);
  assert.throws(() => parseApiKeys("{not json"), /invalid JSON/);
});

test("the store looks keys up by hash, reloads on change, keeps its keys when the file turns bad", async () => {
  const dir = mkdtempSync(join(tmpdir(), "smollm-keys-"));
  const file = join(dir, "api-keys");
  const outcomes: string[] = [];
  try {
    writeFileSync(file, `a:sha256:${A}\n`);
    const store = await ApiKeyStore.open({
      file,
      logger: createLogger({ service: "test", level: "silent" }),
      reloadMs: 50,
      onReload: (outcome) => outcomes.push(outcome),
    });
    assert.equal(store.lookup("sk-a")?.name, "a");
    assert.equal(store.lookup("sk-b"), undefined);
    writeFileSync(file, `a:sha256:${A}\nb:sha256:${B}\n`);
    for (let i = 0; i < 100 && store.lookup("sk-b") === undefined; i++) await sleep(20);
    assert.equal(store.lookup("sk-b")?.name, "b", "a change is picked up by the poll");
    writeFileSync(file, "garbage\n");
    await sleep(200);
    assert.equal(store.lookup("sk-b")?.name, "b", "a bad file keeps the keys in force");
    assert.equal(await store.reload(), false);
    assert.ok(outcomes.includes("failed") && outcomes.includes("ok"));
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
