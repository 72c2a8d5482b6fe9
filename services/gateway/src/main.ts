import { ConfigError, Lifecycle, createLogger, logReady } from "@smollm/common";
import { loadConfig, type GatewayConfig } from "./config.ts";
import { startGateway } from "./gateway.ts";

let config: GatewayConfig;
try {
  config = loadConfig();
} catch (error: unknown) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "gateway", level: config.logLevel });
const lifecycle = new Lifecycle({ logger, drainTimeoutMs: config.drainTimeoutMs });
lifecycle.handleSignals();
try {
  const gateway = lifecycle.own("gateway", await startGateway(config, logger));
  lifecycle.onDrain(() => gateway.drain());
  // `kill -HUP`: re-read the API keys file now (it is also polled for changes).
  process.on("SIGHUP", () => {
    logger.info({ signal: "SIGHUP" }, "reloading API keys");
    void gateway.access.reloadKeys();
  });
  lifecycle.markReady();
  logReady(logger, {
    http_port: gateway.port,
    grpc_port: gateway.grpcPort,
    host: config.host,
    scheduler_address: config.schedulerAddress,
    model: config.modelId,
    auth: gateway.access.enabled,
    tls: config.tls !== undefined,
    mtls: config.mtls !== undefined,
  });
} catch (error: unknown) {
  // Nothing is serving yet: there is nothing to drain.
  logger.fatal({ err: error }, "gateway failed to start");
  process.exit(1);
}
