#!/usr/bin/env -S node --import tsx
import { ConfigError, createLogger, logReady } from "@smollm/common";
import { loadSchedulerConfig } from "./config.ts";
import { startScheduler } from "./scheduler.ts";

try {
  const config = loadSchedulerConfig();
  const logger = createLogger({ service: "scheduler", level: config.logLevel });
  const scheduler = await startScheduler(config, logger, { exitProcess: true });
  scheduler.lifecycle.handleSignals();
  logReady(logger, { grpc_port: scheduler.grpcPort, ops_port: scheduler.opsPort, scheduler_id: config.schedulerId });
} catch (error: unknown) {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error("scheduler failed to start:", error);
  process.exit(1);
}
