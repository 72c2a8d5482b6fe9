/**
 * A worker dropped from the index while it was alive (the registry looked
 * empty for a moment, e.g. right after a Redis FLUSHALL) keeps publishing
 * only changes: without a resync on rejoin, the blocks it still holds would
 * be missing from the index for good and prefix routing would miss them.
 */
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

async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

test("a worker dropped while alive gets its unchanged blocks back when it rejoins", async () => {
  const keys = new ClusterKeys("resync:");
  const [rw, rs, rr] = [0, 1, 2].map((i) => connectRedis({ url: redis.url, logger, name: `c${i}` })) as [
    ReturnType<typeof connectRedis>,
    ReturnType<typeof connectRedis>,
    ReturnType<typeof connectRedis>,
  ];
  await sleep(200);
  const publisher = new KvCachePublisher({ redis: rw, keys, workerId: "w", logger, blockSize: 4 });
  const sync = new KvIndexSync({ redis: rs, reader: rr, keys, logger, workerIds: () => ["w"], blockMs: 100 });
  try {
    await publisher.start();
    await sync.start();
    const system = Array.from({ length: 32 }, (_, i) => i); // a shared system prompt: 8 blocks
    publisher.setSlotTokens(0, system);
    const prompt = blockHashes([...system, 900, 901, 902, 903], 4);
    await until(() => sync.index.match(prompt, () => true).get("w") === 8);

    // The scheduler saw an empty registry for a moment and dropped the worker.
    sync.dropWorker("w");
    // The worker goes on: a new conversation extends the same prefix in another
    // slot; only the new blocks are published (the prefix did not change).
    publisher.setSlotTokens(1, [...system, 1, 2, 3, 4]);
    await sleep(300);
    assert.equal(sync.index.match(prompt, () => true).get("w") ?? 0, 0, "without a resync the prefix is lost");

    await sync.resyncWorker("w");
    assert.equal(sync.index.match(prompt, () => true).get("w"), 8);
    assert.equal(sync.index.match(blockHashes([...system, 1, 2, 3, 4], 4), () => true).get("w"), 9);
  } finally {
    await sync.close();
    await publisher.close();
    await Promise.all([rw, rs, rr].map((r) => closeRedis(r)));
  }
});
