/**
 * API keys and per-key limits with real processes: two gateways sharing the
 * cluster's Redis enforce one request rate and one concurrent-stream limit
 * per key, over HTTP and gRPC; keys reload on SIGHUP and on change; a
 * crashed gateway's stream slots come back; Redis down falls back to
 * per-gateway limits; request size and prompt-length limits.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { AuthenticationError, RateLimitError, SmolLMClient } from "@smollm/client";
import { hashApiKey } from "@smollm/gateway";
import { startLocalCluster, startTestRedis, type LocalCluster, type ServiceProcess } from "@smollm/testkit";
import { metric, scrape, until } from "./helpers.ts";

const MODEL = "SmolLM3-3B";
const httpUrl = (p: ServiceProcess): string => `http://127.0.0.1:${String(p.ready["http_port"])}`;
const opsUrl = (p: ServiceProcess): string => `http://127.0.0.1:${String(p.ready["ops_port"])}`;

/** What became of one streamed chat completion. */
interface StreamOutcome {
  startedAt: number;
  headersAt?: number;
  endedAt?: number;
  status?: number;
  workerId?: string | undefined;
  retryAfter?: string | null;
  completionTokens?: number;
  done: boolean;
  error?: string;
}

/** Streams one completion of exactly `tokens` tokens (ignore_eos) and reports how it went; never throws. */
async function streamCompletion(
  baseUrl: string,
  tokens: number,
  options: { headers?: Record<string, string>; signal?: AbortSignal; onHeaders?: (status: number) => void } = {},
): Promise<StreamOutcome> {
  const out: StreamOutcome = { startedAt: Date.now(), done: false };
  try {
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: `Count to ${tokens}, slowly.` }],
        max_tokens: tokens,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    out.headersAt = Date.now();
    out.status = res.status;
    out.workerId = res.headers.get("x-smollm-worker-id") ?? undefined;
    out.retryAfter = res.headers.get("retry-after");
    options.onHeaders?.(res.status);
    const text = await res.text();
    out.endedAt = Date.now();
    if (res.status !== 200) {
      out.error = text;
      return out;
    }
    const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    out.done = events.at(-1) === "[DONE]";
    for (const e of events.slice(0, -1)) {
      const chunk = JSON.parse(e) as { usage?: { completion_tokens: number }; error?: { message: string } };
      if (chunk.error) out.error = chunk.error.message;
      if (chunk.usage) out.completionTokens = chunk.usage.completion_tokens;
    }
  } catch (error: unknown) {
    out.endedAt = Date.now();
    out.error = String(error);
  }
  return out;
}

const ok = (o: StreamOutcome, tokens: number): boolean => o.status === 200 && o.done && o.error === undefined && o.completionTokens === tokens;

// ------------------------------------------------------------------ access and limits

describe("API keys and per-key limits across two gateways sharing Redis", () => {
  let cluster: LocalCluster;
  let gw2: ServiceProcess;
  let dir: string;
  let keysFile: string;
  const keys = {
    alice: "sk-alice-0123456789",
    bob: "sk-bob-0123456789",
    carol: "sk-carol-0123456789",
    mallory: "sk-mallory-0123456789",
    dave: "sk-dave-0123456789",
  };
  const keysJson = (extra: object[] = []): string =>
    JSON.stringify({
      keys: [
        // One request per 10 s after a burst of 3.
        { name: "alice", sha256: hashApiKey(keys.alice), rpm: 6, burst: 3 },
        { name: "bob", sha256: hashApiKey(keys.bob), max_streams: 2 },
        { name: "carol", sha256: hashApiKey(keys.carol) },
        { name: "mallory", sha256: hashApiKey(keys.mallory), disabled: true },
        ...extra,
      ],
    });
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const small = { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 };
  let redis: Redis;
  /** Live stream leases of a key in Redis, every gateway's. */
  const leases = (name: string) => redis.zcount(`${cluster.redisPrefix}ratelimit:{${name}}:streams`, Date.now(), "+inf");

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "smollm-prod-"));
    keysFile = join(dir, "api-keys.json");
    writeFileSync(keysFile, keysJson());
    cluster = await startLocalCluster({
      workers: 1,
      privateRedis: true,
      workerArgs: () => ["--slots", "8", "--context-size", "2048"],
      gatewayArgs: ["--api-keys-file", keysFile, "--api-keys-reload-ms", "200", "--stream-lease-ttl-ms", "2000", "--max-body-bytes", "65536"],
      schedulerArgs: ["--max-prompt-tokens", "1200"],
    });
    gw2 = await cluster.addGateway();
    redis = new Redis(cluster.redisUrl);
  });
  after(async () => {
    redis?.disconnect();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("401 without or with a wrong key, 403 for a disabled key, clear OpenAI-style bodies; ops paths stay open", async () => {
    const none = await post(cluster.gatewayUrl, small);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    const noneBody = (await none.json()) as { error: { message: string; code: string; type: string } };
    assert.match(noneBody.error.message, /didn't provide an API key.*Authorization: Bearer/);
    assert.equal(noneBody.error.code, "missing_api_key");
    const wrong = await post(cluster.gatewayUrl, small, bearer("sk-nope"));
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, "invalid_api_key");
    const disabled = await post(httpUrl(gw2), small, bearer(keys.mallory));
    assert.equal(disabled.status, 403);
    assert.match(((await disabled.json()) as { error: { message: string } }).error.message, /'mallory' is disabled/);
    assert.equal((await fetch(`${cluster.gatewayUrl}/v1/models`)).status, 401);
    assert.equal((await fetch(`${cluster.gatewayUrl}/v1/models`, { headers: bearer(keys.carol) })).status, 200);
    for (const path of ["/healthz", "/readyz", "/metrics"]) assert.equal((await fetch(`${cluster.gatewayUrl}${path}`)).status, 200, path);
    const ok200 = await post(cluster.gatewayUrl, small, bearer(keys.carol));
    assert.equal(ok200.status, 200);
    const m = await scrape(`${cluster.gatewayUrl}/metrics`);
    assert.equal(metric(m, "smollm_gateway_auth_failures_total", { reason: "missing_key" }), 2);
    assert.equal(metric(m, "smollm_gateway_api_keys"), 4);
  });

  test("a request rate limit holds across both gateways: burst, then 429 with Retry-After and x-ratelimit headers", async () => {
    const statuses: number[] = [];
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post(i % 2 === 0 ? cluster.gatewayUrl : httpUrl(gw2), small, bearer(keys.alice));
      statuses.push(res.status);
      remaining.push(res.headers.get("x-ratelimit-remaining-requests"));
      assert.equal(res.headers.get("x-ratelimit-limit-requests"), "6");
      await res.text();
    }
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.deepEqual(remaining, ["2", "1", "0"]);
    for (const base of [httpUrl(gw2), cluster.gatewayUrl]) {
      const refused = await post(base, small, bearer(keys.alice));
      assert.equal(refused.status, 429);
      const retryAfter = Number(refused.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${retryAfter}`);
      const body = (await refused.json()) as { error: { message: string; code: string; type: string } };
      assert.equal(body.error.code, "rate_limit_exceeded");
      assert.equal(body.error.type, "requests");
      assert.match(body.error.message, /Rate limit reached for API key 'alice': 6 requests per minute/);
    }
    // Another key is not affected.
    assert.equal((await post(httpUrl(gw2), small, bearer(keys.carol))).status, 200);
    const m = await scrape(`${httpUrl(gw2)}/metrics`);
    assert.equal(metric(m, "smollm_gateway_rate_limited_total", { api_key: "alice", limit: "requests" }), 1);
  });

  test("a concurrent-stream limit holds across both gateways; a finished or aborted stream frees its slot", async () => {
    const aborts = [new AbortController(), new AbortController()];
    let started = 0;
    const held = [
      streamCompletion(cluster.gatewayUrl, 1_000, { headers: bearer(keys.bob), signal: aborts[0]!.signal, onHeaders: (status) => void (status === 200 && started++) }),
      streamCompletion(httpUrl(gw2), 1_000, { headers: bearer(keys.bob), signal: aborts[1]!.signal, onHeaders: (status) => void (status === 200 && started++) }),
    ];
    await until("bob's two streams to start", () => started === 2, 20_000);
    assert.equal(await leases("bob"), 2, "one lease per stream, in Redis");
    for (const base of [cluster.gatewayUrl, httpUrl(gw2)]) {
      const third = await post(base, small, bearer(keys.bob));
      assert.equal(third.status, 429);
      assert.equal(third.headers.get("retry-after"), "1");
      const body = (await third.json()) as { error: { message: string; code: string } };
      assert.equal(body.error.code, "concurrency_limit_exceeded");
      assert.match(body.error.message, /'bob': at most 2 may be in flight/);
    }
    aborts[0]!.abort();
    await until("the aborted stream's slot to come back", async () => (await post(httpUrl(gw2), small, bearer(keys.bob))).status === 200, 5_000);
    aborts[1]!.abort();
    await Promise.all(held);
    await until("bob's slots to be given back", async () => (await leases("bob")) === 0, 5_000);
  });

  test("gRPC: the same keys and limits (UNAUTHENTICATED, RESOURCE_EXHAUSTED with a retry hint)", async () => {
    const address = `127.0.0.1:${String(gw2.ready["grpc_port"])}`;
    const params = { model: MODEL, messages: [{ role: "user", content: "hi" }], maxTokens: 2 };
    const anonymous = new SmolLMClient({ address });
    const alice = new SmolLMClient({ address, apiKey: keys.alice });
    const carol = new SmolLMClient({ address, apiKey: keys.carol });
    try {
      await assert.rejects(anonymous.streamChatCompletion(params).collect(), AuthenticationError);
      await assert.rejects(anonymous.listModels(), AuthenticationError);
      const done = await carol.streamChatCompletion(params).collect();
      assert.equal(done.usage?.completionTokens, 2);
      assert.equal((await carol.listModels())[0]?.id, MODEL);
      // alice spent her burst over HTTP in the test before.
      await assert.rejects(alice.createChatCompletion(params), (e: unknown) => e instanceof RateLimitError && (e.retryAfterMs ?? 0) > 0);
    } finally {
      for (const c of [anonymous, alice, carol]) c.close();
    }
  });

  test("the keys file is reloaded on SIGHUP and on change, by every gateway", async () => {
    assert.equal((await post(cluster.gatewayUrl, small, bearer(keys.dave))).status, 401);
    writeFileSync(keysFile, keysJson([{ name: "dave", sha256: hashApiKey(keys.dave) }]));
    cluster.gateway.signal("SIGHUP");
    await until("gateway 1 to accept dave", async () => (await post(cluster.gatewayUrl, small, bearer(keys.dave))).status === 200, 3_000);
    await until("gateway 2 (polling) to accept dave", async () => (await post(httpUrl(gw2), small, bearer(keys.dave))).status === 200, 3_000);
    // A broken file keeps the keys in force.
    writeFileSync(keysFile, "this is not a keys file");
    cluster.gateway.signal("SIGHUP");
    await sleep(500);
    assert.equal((await post(cluster.gatewayUrl, small, bearer(keys.dave))).status, 200);
    writeFileSync(keysFile, keysJson());
    await until("dave to be gone", async () => (await post(httpUrl(gw2), small, bearer(keys.dave))).status === 401, 3_000);
    const m = await scrape(`${cluster.gatewayUrl}/metrics`);
    assert.ok(metric(m, "smollm_gateway_api_keys_reloads_total", { outcome: "failed" }) >= 1);
  });

  test("request body and prompt-length limits: 413 and 400 with clear messages", async () => {
    const big = await post(cluster.gatewayUrl, { ...small, messages: [{ role: "user", content: "x".repeat(70_000) }] }, bearer(keys.carol));
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: { message: string } }).error.message, /Request body too large: the limit is 65536 bytes/);
    const long = await post(cluster.gatewayUrl, { ...small, messages: [{ role: "user", content: "bonjour ".repeat(1_500) }] }, bearer(keys.carol));
    assert.equal(long.status, 400);
    const body = (await long.json()) as { error: { message: string; code: string } };
    assert.equal(body.error.code, "context_length_exceeded");
    assert.match(body.error.message, /at most 1200 tokens; your messages resulted in \d+ tokens/);
  });

  test("a crashed gateway's stream slots come back after the lease TTL", async () => {
    let started = 0;
    const doomed = [
      streamCompletion(httpUrl(gw2), 1_000, { headers: bearer(keys.bob), onHeaders: (status) => void (status === 200 && started++) }),
      streamCompletion(httpUrl(gw2), 1_000, { headers: bearer(keys.bob), onHeaders: (status) => void (status === 200 && started++) }),
    ];
    await until("bob's streams on gateway 2", () => started === 2, 20_000);
    assert.equal((await post(cluster.gatewayUrl, small, bearer(keys.bob))).status, 429);
    const killedAt = Date.now();
    gw2.signal("SIGKILL");
    await Promise.all(doomed);
    assert.equal(await leases("bob"), 2, "a dead gateway's leases stay until they expire");
    await until("bob's slots to come back", async () => (await post(cluster.gatewayUrl, small, bearer(keys.bob))).status === 200, 6_000);
    const reclaimedMs = Date.now() - killedAt;
    assert.ok(reclaimedMs >= 1_000, `reclaimed after ${reclaimedMs} ms, before the 2000 ms TTL could pass`);
    console.log(`stream slots of a SIGKILLed gateway reclaimed after ${reclaimedMs} ms (lease TTL 2000 ms)`);
  });

  test("Redis unreachable: keys still checked, limits enforced per gateway (fail-open to local), back when it returns", async () => {
    const limiterRedis = await startTestRedis();
    const gw3 = await cluster.addGateway(["--redis-url", limiterRedis.url]);
    try {
      const base = httpUrl(gw3);
      await limiterRedis.stop();
      assert.equal((await post(base, small)).status, 401, "authentication does not need Redis");
      assert.equal((await post(base, small, bearer(keys.carol))).status, 200, "keys without limits are unaffected");
      // alice: burst 3, enforced by this gateway alone now.
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post(base, small, bearer(keys.alice))).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const m = await scrape(`${base}/metrics`);
      assert.equal(metric(m, "smollm_gateway_rate_limiter_degraded"), 1);
      assert.ok(metric(m, "smollm_gateway_rate_limiter_redis_errors_total") >= 1);
      await limiterRedis.restart();
      await sleep(1_200);
      await post(base, small, bearer(keys.carol));
      await post(base, small, bearer(keys.bob));
      assert.equal(metric(await scrape(`${base}/metrics`), "smollm_gateway_rate_limiter_degraded"), 0);
    } finally {
      await gw3.stop();
      await limiterRedis.stop();
    }
  });
});
