import type { Logger } from "pino";

/** Something that owns a resource and releases it; must be idempotent. */
export interface Closeable {
  close(): Promise<void> | void;
}

/** Options of {@link Lifecycle}. */
export interface LifecycleOptions {
  logger: Logger;
  /** How long in-flight work may take to finish after SIGTERM; default 30 000 ms. */
  drainTimeoutMs?: number;
  /** Exit the process after shutdown; default true. Tests that embed services pass false. */
  exitProcess?: boolean;
}

/**
 * Owns a process's shutdown order. Resources are registered as they are
 * opened and closed in reverse order. On SIGTERM or SIGINT: readiness flips
 * to false, `drain` hooks run (in-flight streams finish, up to the grace
 * period), then everything closes and the process exits 0.
 */
export class Lifecycle {
  readonly #closeables: { name: string; resource: Closeable }[] = [];
  readonly #drainers: (() => Promise<void>)[] = [];
  readonly #logger: Logger;
  readonly #drainTimeoutMs: number;
  readonly #exitProcess: boolean;
  #ready = false;
  #shutdown: Promise<void> | undefined;

  constructor(options: LifecycleOptions) {
    this.#logger = options.logger;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.#exitProcess = options.exitProcess ?? true;
  }

  /** Whether the process should receive new work. */
  get ready(): boolean {
    return this.#ready && this.#shutdown === undefined;
  }

  /** Whether shutdown has begun. */
  get stopping(): boolean {
    return this.#shutdown !== undefined;
  }

  markReady(): void {
    this.#ready = true;
  }

  /** Registers a resource; returns it for chaining. Closed in reverse order. */
  own<T extends Closeable>(name: string, resource: T): T {
    this.#closeables.push({ name, resource });
    return resource;
  }

  /** Registers work that finishes in-flight requests during shutdown. */
  onDrain(drain: () => Promise<void>): void {
    this.#drainers.push(drain);
  }

  /** Installs SIGTERM / SIGINT handlers that call {@link shutdown}. */
  handleSignals(): void {
    const onSignal = (signal: NodeJS.Signals): void => {
      this.#logger.info({ signal }, "shutdown requested");
      void this.shutdown();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  /** Drains, closes everything in reverse order, then (by default) exits 0. Idempotent. */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#run();
    return this.#shutdown;
  }

  async #run(): Promise<void> {
    this.#ready = false;
    const drained = Promise.allSettled(this.#drainers.map((d) => d()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#drainTimeoutMs);
      timer.unref();
    });
    const outcome = await Promise.race([drained.then(() => "drained" as const), timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") this.#logger.warn({ drain_timeout_ms: this.#drainTimeoutMs }, "drain timed out");
    let failed = false;
    for (const { name, resource } of [...this.#closeables].reverse()) {
      try {
        await resource.close();
      } catch (error: unknown) {
        failed = true;
        this.#logger.error({ err: error, resource: name }, "close failed");
      }
    }
    this.#logger.info({ outcome }, "shutdown complete");
    if (this.#exitProcess) {
      process.exitCode = failed ? 1 : 0;
      // Let the logger flush, then leave even if a stray handle is left.
      setTimeout(() => process.exit(), 50).unref();
    }
  }
}
