import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@smollm/common";
import { loadConfig } from "./config.ts";

test("defaults", () => {
  const config = loadConfig({ argv: [], env: {} });
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.port, 8080);
  assert.equal(config.schedulerAddress, "127.0.0.1:50051");
  assert.equal(config.modelId, "SmolLM3-3B");
  assert.deepEqual(config.modelAliases, []);
  assert.equal(config.maxBodyBytes, 4 * 1024 * 1024);
  assert.equal(config.maxRetries, 2);
  assert.equal(config.logLevel, "info");
  assert.ok(Object.isFrozen(config));
});

test("flags win over environment; port 0 allowed", () => {
  const config = loadConfig({
    argv: ["--port", "0", "--model-aliases=a,b", "--log-level", "debug"],
    env: { SMOLLM_PORT: "9000", SMOLLM_SCHEDULER_ADDRESS: "scheduler:7000", SMOLLM_MAX_RETRIES: "0" },
  });
  assert.equal(config.port, 0);
  assert.equal(config.schedulerAddress, "scheduler:7000");
  assert.deepEqual(config.modelAliases, ["a", "b"]);
  assert.equal(config.maxRetries, 0);
  assert.equal(config.logLevel, "debug");
});

test("every problem reported at once", () => {
  assert.throws(
    () =>
      loadConfig({
        argv: ["--port", "70000", "--nope", "1"],
        env: { SMOLLM_SCHEDULER_ADDRESS: "no-port", SMOLLM_LOG_LEVEL: "loud", SMOLLM_DEFAULT_TOP_P: "x" },
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 5, error.message);
      return true;
    },
  );
});

test("access, limits and TLS settings: defaults off, all-or-none TLS files, readable, enums checked", () => {
  const d = loadConfig({ argv: [], env: {} });
  assert.equal(d.apiKeysFile, undefined);
  assert.equal(d.rateLimitRpm, 0);
  assert.equal(d.maxConcurrentStreams, 0);
  assert.equal(d.streamLeaseTtlMs, 30_000);
  assert.equal(d.rateLimitOnRedisError, "local");
  assert.equal(d.redisUrl, "redis://127.0.0.1:6379");
  assert.equal(d.tls, undefined);
  assert.equal(d.mtls, undefined);
  const file = new URL(import.meta.url).pathname; // any readable file
  const c = loadConfig({
    argv: ["--api-keys-file", "/etc/smollm/api-keys/api-keys", "--rate-limit-rpm", "600", "--tls-cert", file, "--tls-key", file],
    env: { SMOLLM_MAX_CONCURRENT_STREAMS: "4", SMOLLM_RATE_LIMIT_ON_REDIS_ERROR: "reject" },
  });
  assert.equal(c.apiKeysFile, "/etc/smollm/api-keys/api-keys");
  assert.equal(c.rateLimitRpm, 600);
  assert.equal(c.maxConcurrentStreams, 4);
  assert.equal(c.rateLimitOnRedisError, "reject");
  assert.deepEqual(c.tls, { certFile: file, keyFile: file });
  assert.throws(
    () =>
      loadConfig({
        argv: ["--tls-cert", file, "--mtls-ca", "/nonexistent/ca.pem", "--mtls-cert", file, "--mtls-key", file],
        env: { SMOLLM_RATE_LIMIT_ON_REDIS_ERROR: "open", SMOLLM_REDIS_URL: "http://x", SMOLLM_STREAM_LEASE_TTL_MS: "10" },
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const text = error.problems.join("\n");
      assert.match(text, /--tls-cert, --tls-key go together/);
      assert.match(text, /--mtls-ca \(SMOLLM_MTLS_CA\): cannot read/);
      assert.match(text, /rate-limit-on-redis-error.*must be one of local, reject/);
      assert.match(text, /--redis-url/);
      assert.match(text, /--stream-lease-ttl-ms/);
      return true;
    },
  );
});
