import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startTestRedis, type TestRedis } from "@smollm/testkit";
import { ClusterKeys } from "./keys.ts";
import { connectRedis, closeRedis } from "./redis-client.ts";
import { WorkerDirectory } from "./worker-directory.ts";
import { WorkerRegistration } from "./worker-registration.ts";
import type { WorkerInfo } from "./worker-info.ts";

const logger = pino({ level: "silent" });
let redis: TestRedis;
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  await redis.stop();
});

function info(id: string, active = 0): WorkerInfo {
  return {
    id, address: `127.0.0.1:${id.length}`, model: "tiny", slots: 4, contextSize: 1024, activeSlots: active, queued: 0,
    maxQueue: 8, freeKvTokens: 4096, draining: false, startedAt: Date.now(), updatedAt: Date.now(),
  };
}

test("workers register, heartbeat, expire and leave; the directory follows", async () => {
  const keys = new ClusterKeys("t1:");
  const a = connectRedis({ url: redis.url, logger, name: "a" });
  const b = connectRedis({ url: redis.url, logger, name: "b" });
  const d = connectRedis({ url: redis.url, logger, name: "d" });
  const sub = connectRedis({ url: redis.url, logger, name: "sub" });
  let activeA = 0;
  const regA = new WorkerRegistration({ redis: a, keys, logger, snapshot: () => info("wa", activeA), heartbeatMs: 100, ttlMs: 400 });
  const regB = new WorkerRegistration({ redis: b, keys, logger, snapshot: () => info("wb"), heartbeatMs: 100, ttlMs: 400 });
  const dir = new WorkerDirectory({ redis: d, subscriber: sub, keys, logger, refreshMs: 100 });
  try {
    await regA.start();
    await regB.start();
    await dir.start();
    assert.deepEqual(dir.workers().map((w) => w.id).sort(), ["wa", "wb"]);
    activeA = 3;
    await sleep(300);
    assert.equal(dir.get("wa")?.activeSlots, 3);

    // A clean leave is seen at once (pub/sub) or at the next poll.
    await regB.close();
    await sleep(150);
    assert.deepEqual(dir.workers().map((w) => w.id), ["wa"]);

    // A worker that stops heartbeating (its Redis link dies) expires.
    a.disconnect();
    await sleep(700);
    assert.equal(dir.workers().length, 0);
  } finally {
    await regA.close();
    await dir.close();
    for (const r of [a, b, d, sub]) await closeRedis(r);
  }
});

test("the directory keeps the last known workers while Redis is down", async () => {
  const keys = new ClusterKeys("t2:");
  const w = connectRedis({ url: redis.url, logger, name: "w" });
  const d = connectRedis({ url: redis.url, logger, name: "d" });
  const reg = new WorkerRegistration({ redis: w, keys, logger, snapshot: () => info("wx"), heartbeatMs: 100, ttlMs: 1000 });
  const dir = new WorkerDirectory({ redis: d, keys, logger, refreshMs: 100 });
  try {
    await reg.start();
    await dir.start();
    assert.equal(dir.workers().length, 1);
    redis.pause();
    await sleep(2_500);
    assert.equal(dir.stale, true);
    assert.equal(dir.workers().length, 1);
    redis.resume();
    await sleep(1_500);
    assert.equal(dir.stale, false);
    assert.equal(dir.workers().length, 1);
  } finally {
    redis.resume();
    await reg.close();
    await dir.close();
    await closeRedis(w);
    await closeRedis(d);
  }
});
