#!/usr/bin/env node
/**
 * Worker process entry point: `node --import tsx services/worker/src/main.ts [--flags]`
 * (flags and SMOLLM_* variables: see config.ts). Exits 0 after a SIGTERM drain,
 * 1 when it cannot start (bad configuration, model not available).
 */
import { ConfigError, createLogger } from "@smollm/common";
import { loadConfig, type WorkerConfig } from "./config.ts";
import { startWorker } from "./worker.ts";

let config: WorkerConfig;
try {
  config = loadConfig();
} catch (error: unknown) {
  // Before a logger exists: the message lists every problem.
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
}
const logger = createLogger({ service: "worker", level: config.logLevel });
try {
  const worker = await startWorker(config, logger, { handleSignals: true });
  await worker.closed;
  process.exitCode = 0;
} catch (error: unknown) {
  logger.fatal({ err: error, worker_id: config.workerId }, "worker failed to start");
  process.exitCode = 1;
}
// Let pino flush, then leave even if a stray handle (a reconnecting socket) remains.
setTimeout(() => process.exit(), 100).unref();
