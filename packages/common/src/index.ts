export * from "./errors.ts";
export { createLogger, logReady, type Logger, type LoggerOptions } from "./logger.ts";
export { ConfigError, Settings, type SettingsSource } from "./settings.ts";
export { readTlsSettings, type TlsFiles, type TlsSettingsOptions } from "./tls-settings.ts";
export { Lifecycle, type Closeable, type LifecycleOptions } from "./lifecycle.ts";
export {
  createRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  LATENCY_BUCKETS_S,
  TOKEN_LATENCY_BUCKETS_S,
} from "./metrics.ts";
export { startOpsServer, type OpsServer, type OpsServerOptions } from "./ops-server.ts";
