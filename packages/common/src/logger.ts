import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Service name put on every line as `service`. */
  service: string;
  /** Minimum level; default `info`. */
  level?: LevelWithSilent;
}

/**
 * One structured JSON logger per process. Keys are stable snake_case
 * (`request_id`, `worker_id`, `err`) so lines can be joined across services.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino({
    level: options.level ?? "info",
    base: { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.errWithCause },
  });
}

/**
 * Logs the `ready` line (`msg: "ready"` with ports and ids). Supervisors and
 * tests wait for it, so it is written even when the level hides other info
 * lines — never when logging is silenced.
 */
export function logReady(logger: Logger, fields: Record<string, unknown>): void {
  const out = logger.isLevelEnabled("info") || logger.level === "silent" ? logger : logger.child({}, { level: "info" });
  out.info(fields, "ready");
}
