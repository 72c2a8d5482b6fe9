import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startTestRedis, type TestRedis } from "@smollm/testkit";
import { blockHashes } from "./block-hash.ts";
import { ClusterKeys } from "./keys.ts";
import { KvCachePublisher } from "./kv-cache-publisher.ts";
import { KvIndexSync } from "./kv-index-sync.ts";
import { closeRedis, connectRedis } from "./redis-client.ts";

const logger = pino({ level: "silent" });
let redis: TestRedis;
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  await redis.stop();
});

const range = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => i + offset);

async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

test("workers' KV events feed the index; a new scheduler rebuilds it from snapshot + stream; Redis loss heals", async () => {
  const keys = new ClusterKeys("kv1:");
  const conns = Array.from({ length: 6 }, (_, i) => connectRedis({ url: redis.url, logger, name: `c${i}` }));
  const [ra, rb, s1, r1, s2, r2] = conns as [typeof conns[0], typeof conns[0], typeof conns[0], typeof conns[0], typeof conns[0], typeof conns[0]];
  await sleep(200);
  const pa = new KvCachePublisher({ redis: ra, keys, workerId: "a", logger, blockSize: 4 });
  const pb = new KvCachePublisher({ redis: rb, keys, workerId: "b", logger, blockSize: 4 });
  const sync = new KvIndexSync({ redis: s1, reader: r1, keys, logger, workerIds: () => ["a", "b"], blockMs: 100 });
  let sync2: KvIndexSync | undefined;
  try {
    await pa.start();
    await pb.start();
    await sync.start();
    const convo = range(40);
    pa.setSlotTokens(0, convo); // 10 blocks
    pb.setSlotTokens(0, range(20)); // first 5 blocks shared with a
    pb.setSlotTokens(1, range(40, 1000));
    const prompt = blockHashes([...convo, 77, 78, 79, 80], 4);
    // Two publishers: their batches arrive in either order.
    await until(() => sync.index.match(prompt, () => true).get("a") === 10 && sync.index.match(prompt, () => true).get("b") === 5);

    // The slot is reused for another conversation: a's blocks after the shared first 2 go.
    pa.setSlotTokens(0, [...range(8), 500, 501, 502, 503]);
    await until(() => sync.index.match(prompt, (w) => w === "a").get("a") === 2);

    // A restarted scheduler: snapshot + stream replay give the same answers.
    sync2 = new KvIndexSync({ redis: s2, reader: r2, keys, logger, workerIds: () => ["a", "b"], blockMs: 100 });
    await sync2.start();
    assert.deepEqual([...sync2.index.match(prompt, () => true)].sort(), [...sync.index.match(prompt, () => true)].sort());
    assert.equal(sync2.index.size, sync.index.size);

    // Redis restarts empty (no persistence): the index goes unhealthy, workers republish, it rebuilds.
    await redis.restart();
    await until(() => !sync.healthy || sync.index.size === 0, 5_000);
    await sleep(500);
    await pa.verify();
    await pb.verify();
    await until(() => sync.healthy && sync.index.match(prompt, () => true).get("b") === 5, 8_000);
    assert.equal(sync.index.match(prompt, () => true).get("a"), 2);
  } finally {
    await pa.close();
    await pb.close();
    await sync.close();
    await sync2?.close();
    for (const c of conns) await closeRedis(c);
  }
});
