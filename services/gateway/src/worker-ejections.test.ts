import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkerEjections } from "./worker-ejections.ts";

test("an ejected worker is avoided until its time is up, or until it answers again", () => {
  let now = 1_000;
  const e = new WorkerEjections(5_000, () => now);
  assert.deepEqual(e.active(), []);
  assert.equal(e.eject("w1"), true, "a first ejection is new");
  assert.equal(e.eject("w1"), false, "ejected again while ejected: not new (counted once)");
  e.eject("w2");
  assert.deepEqual(e.active().sort(), ["w1", "w2"]);
  now += 4_999;
  assert.deepEqual(e.active().sort(), ["w1", "w2"]);
  e.restore("w2");
  assert.deepEqual(e.active(), ["w1"]);
  now += 1;
  assert.deepEqual(e.active(), [], "expired");
  assert.equal(e.eject("w1"), true, "ejected anew after it expired");
});

test("0 ms disables ejection", () => {
  const e = new WorkerEjections(0);
  assert.equal(e.eject("w1"), false);
  assert.deepEqual(e.active(), []);
});
