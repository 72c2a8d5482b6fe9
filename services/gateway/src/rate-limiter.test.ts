import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { UnavailableError, createLogger } from "@smollm/common";
import { ClusterKeys, closeRedis, connectRedis, whenRedisReady, type Redis } from "@smollm/cluster-state";
import { startTestRedis, type TestRedis } from "@smollm/testkit";
import { RateLimiter, type AdmitResult, type RateLimiterOptions } from "./rate-limiter.ts";

const logger = createLogger({ service: "test", level: "silent" });

describe("rate limiter (real Redis, several limiters = several gateways)", () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  const limiters: RateLimiter[] = [];
  let n = 0;

  const limiter = async (options: Partial<RateLimiterOptions> = {}): Promise<{ limiter: RateLimiter; client: Redis }> => {
    const client = connectRedis({ url: redis.url, logger, name: `test-${n++}` });
    await whenRedisReady(client);
    clients.push(client);
    const l = new RateLimiter({ redis: client, keys: new ClusterKeys("rl-test:"), logger, leaseTtlMs: 30_000, onRedisError: "local", ...options });
    limiters.push(l);
    return { limiter: l, client };
  };
  const ok = (r: AdmitResult): boolean => r.ok;

  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    for (const l of limiters) await l.close();
    for (const c of clients) await closeRedis(c);
    await redis.stop();
  });

  test("a token bucket shared by two gateways: burst, then the per-minute rate, with a retry hint", async () => {
    const { limiter: a } = await limiter();
    const { limiter: b } = await limiter();
    const limits = { rpm: 60, burst: 3, maxStreams: 0 };
    const results = [await a.admit("bucket", limits), await b.admit("bucket", limits), await a.admit("bucket", limits), await b.admit("bucket", limits)];
    assert.deepEqual(results.map(ok), [true, true, true, false]);
    const refused = results[3];
    assert.ok(refused && !refused.ok && refused.limit === "requests");
    assert.ok(refused.retryAfterMs > 500 && refused.retryAfterMs <= 1_000, `retry after ${refused.retryAfterMs} ms`);
    const first = results[0];
    assert.ok(first?.ok && first.remainingRequests === 2);
    await sleep(refused.retryAfterMs + 20);
    assert.equal((await b.admit("bucket", limits)).ok, true, "a token came back after the hinted wait");
    // Other keys have their own buckets.
    assert.equal((await a.admit("other", limits)).ok, true);
  });

  test("concurrent streams are counted over every gateway; a released slot is free again", async () => {
    const { limiter: a } = await limiter();
    const { limiter: b } = await limiter();
    const limits = { rpm: 0, burst: 1, maxStreams: 2 };
    const one = await a.admit("streams", limits);
    const two = await b.admit("streams", limits);
    const three = await a.admit("streams", limits);
    assert.ok(one.ok && two.ok);
    assert.ok(!three.ok && three.limit === "streams" && three.retryAfterMs > 0);
    one.lease.release();
    one.lease.release(); // idempotent
    await sleep(20);
    const four = await b.admit("streams", limits);
    assert.ok(four.ok, "the released slot is taken");
    assert.equal((await a.admit("streams", limits)).ok, false);
    two.lease.release();
    four.lease.release();
  });

  test("a refusal by one limit takes nothing from the other", async () => {
    const { limiter: a } = await limiter();
    const limits = { rpm: 60, burst: 2, maxStreams: 1 };
    const held = await a.admit("both", limits);
    assert.ok(held.ok);
    const refused = await a.admit("both", limits); // streams full: no token taken
    assert.ok(!refused.ok && refused.limit === "streams");
    held.lease.release();
    await sleep(20);
    const again = await a.admit("both", limits);
    assert.ok(again.ok && again.remainingRequests === 0, "exactly one token was spent before");
    again.lease.release();
  });

  test("leases are renewed while held, and a crashed gateway's slots come back after the TTL", async () => {
    const { limiter: crashing, client } = await limiter({ leaseTtlMs: 1_000 });
    const { limiter: survivor } = await limiter({ leaseTtlMs: 1_000 });
    const limits = { rpm: 0, burst: 1, maxStreams: 1 };
    const held = await crashing.admit("lease", limits);
    assert.ok(held.ok);
    await sleep(1_600);
    assert.equal((await survivor.admit("lease", limits)).ok, false, "renewed past its TTL while held");
    // The gateway dies: no renewal, no release.
    client.disconnect();
    const started = Date.now();
    let admitted: AdmitResult | undefined;
    while (Date.now() - started < 3_000) {
      admitted = await survivor.admit("lease", limits);
      if (admitted.ok) break;
      await sleep(100);
    }
    assert.ok(admitted?.ok, "the slot came back");
    assert.ok(Date.now() - started <= 1_500, `it came back ${Date.now() - started} ms after the crash (TTL 1000 ms)`);
    admitted.lease.release();
  });

  test("Redis down: `local` enforces the limits per process, `reject` refuses; both recover", async () => {
    const { limiter: local } = await limiter({ leaseTtlMs: 2_000 });
    const { limiter: reject } = await limiter({ leaseTtlMs: 2_000, onRedisError: "reject" });
    const limits = { rpm: 6_000, burst: 2, maxStreams: 0 };
    redis.pause();
    try {
      const t0 = Date.now();
      const results = [await local.admit("down", limits), await local.admit("down", limits), await local.admit("down", limits)];
      assert.deepEqual(results.map(ok), [true, true, false], "the local bucket holds the same burst");
      assert.ok(Date.now() - t0 < 1_000, "only the first call waited for Redis (250 ms), the others fell back at once");
      assert.equal(local.degraded, true);
      await assert.rejects(reject.admit("down", limits), (error: unknown) => error instanceof UnavailableError && error.retryAfterMs === 1_000);
      // Unlimited keys never touch Redis.
      assert.equal((await reject.admit("down", { rpm: 0, burst: 1, maxStreams: 0 })).ok, true);
    } finally {
      redis.resume();
    }
    await sleep(1_100);
    assert.equal((await local.admit("up", limits)).ok, true);
    assert.equal(local.degraded, false, "back on Redis after the retry period");
    assert.equal((await reject.admit("up", limits)).ok, true);
  });
});
