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
