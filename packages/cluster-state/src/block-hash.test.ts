import { test } from "node:test";
import assert from "node:assert/strict";
import { blockHashes } from "./block-hash.ts";

test("chained block hashes: equal prefixes give equal hashes, a change changes every later block", () => {
  const a = Array.from({ length: 100 }, (_, i) => i * 7);
  const b = [...a];
  b[40] = 99999;
  const ha = blockHashes(a, 16);
  const hb = blockHashes(b, 16);
  assert.equal(ha.length, 6); // 100 / 16, full blocks only
  assert.deepEqual(hb.slice(0, 2), ha.slice(0, 2));
  for (let i = 2; i < 6; i++) assert.notEqual(hb[i], ha[i]);
  assert.equal(new Set(ha).size, 6);
  assert.deepEqual(blockHashes(a, 16, 3), ha.slice(0, 3));
  // Same block contents at another position hash differently (the chain).
  const rep = new Array<number>(64).fill(5);
  const hr = blockHashes(rep, 16);
  assert.equal(new Set(hr).size, 4);
  assert.match(ha[0] ?? "", /^[0-9a-f]{16}$/);
});
