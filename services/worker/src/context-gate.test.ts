import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ContextGate } from "./context-gate.ts";

test("the gate is open until an exclusive operation is pending; passers wait for every pending one", async () => {
  const gate = new ContextGate();
  assert.equal(gate.closed, false);
  await gate.pass(); // open: at once
  const order: string[] = [];
  const first = gate.exclusive(async () => {
    await sleep(30);
    order.push("op1");
  });
  const second = gate.exclusive(async () => {
    await sleep(60);
    order.push("op2");
  });
  assert.equal(gate.closed, true);
  const passer = gate.pass().then(() => order.push("passed"));
  await Promise.all([first, second, passer]);
  assert.deepEqual(order, ["op1", "op2", "passed"]);
  assert.equal(gate.closed, false);
});

test("a failing operation opens the gate too, and its error reaches the caller", async () => {
  const gate = new ContextGate();
  await assert.rejects(gate.exclusive(async () => Promise.reject(new Error("state file unreadable"))), /state file unreadable/);
  assert.equal(gate.closed, false);
  await gate.pass();
});
