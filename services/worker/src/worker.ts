import { hostname } from "node:os";
import type { Logger } from "pino";
import { createRegistry, Lifecycle, logReady, startOpsServer } from "@smollm/common";
import { ClusterKeys, closeRedis, connectRedis, KvCachePublisher, WorkerRegistration, type WorkerInfo } from "@smollm/cluster-state";
import { serverCredentials } from "@smollm/proto";
import type { WorkerConfig } from "./config.ts";
import { Engine } from "./engine.ts";
import { startWorkerGrpcServer } from "./grpc-server.ts";
import { setUpKvTransfer } from "./kv-transfer.ts";
import { createWorkerMetrics } from "./metrics.ts";
import { loadWorkerModel } from "./model-loader.ts";

/** A running worker. */
export interface RunningWorker {
  readonly workerId: string;
  readonly grpcPort: number;
  readonly opsPort: number;
  /** host:port registered for gateways to dial. */
  readonly address: string;
  /** The model name it reports (the tiny model's on fallback). */
  readonly model: string;
  /**
   * Drains (readiness off, registration marked draining, new calls UNAVAILABLE,
   * in-flight generations finish up to the drain timeout), then closes
   * everything in reverse order of opening. Idempotent.
   */
  close(): Promise<void>;
  /** Settles when the worker has shut down, by close() or a signal. */
  readonly closed: Promise<void>;
}

/** Options of {@link startWorker}. */
export interface StartWorkerOptions {
  /** Shut down on SIGTERM / SIGINT (the process entry point); default false. */
  handleSignals?: boolean;
}

/** The address gateways dial: --advertise-address, else this host and the bound port. */
function advertisedAddress(config: WorkerConfig, grpcPort: number): string {
  const configured = config.advertiseAddress;
  if (configured !== undefined) return /:\d+$/.test(configured) ? configured : `${configured}:${grpcPort}`;
  const wildcard = config.host === "0.0.0.0" || config.host === "::" || config.host === "";
  const host = wildcard ? hostname() : config.host;
  return host.includes(":") ? `[${host}]:${grpcPort}` : `${host}:${grpcPort}`;
}

/**
 * Starts a worker: ops endpoints, Redis client, model and context, KV-cache
 * publisher, engine, registration, gRPC server (in that order; closed in reverse). Resolves once
 * it serves and has logged `ready`. On a start failure everything opened so
 * far is closed and the error is rethrown.
 */
export async function startWorker(
  config: WorkerConfig,
  logger: Logger,
  options: StartWorkerOptions = {},
): Promise<RunningWorker> {
  const log = logger.child({ worker_id: config.workerId });
  const startedAt = Date.now();
  // The process exit belongs to the entry point, not to an embeddable worker.
  const lifecycle = new Lifecycle({ logger: log, drainTimeoutMs: config.drainTimeoutMs, exitProcess: false });
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= lifecycle.shutdown().then(resolveClosed);
    return closing;
  };
  try {
    const registry = createRegistry("worker");
    const metrics = createWorkerMetrics(registry, config.slots);
    // Ops first: /healthz answers and /readyz says "not ready" while the model loads.
    const ops = lifecycle.own(
      "ops-server",
      await startOpsServer({ host: config.host, port: config.opsPort, registry, isReady: () => lifecycle.ready }),
    );
    // Never blocks or fails the start: heartbeats register once Redis answers.
    const redis = connectRedis({ url: config.redisUrl, logger: log, name: `worker:${config.workerId}` });
    lifecycle.own("redis", { close: () => closeRedis(redis) });

    const loaded = lifecycle.own(
      "model",
      await loadWorkerModel(config, log, (sequences, tokens) => {
        metrics.decodeBatchSequences.observe(sequences);
        metrics.decodeBatchTokens.observe(tokens);
      }),
    );
    const keys = new ClusterKeys(config.redisPrefix);
    // The prefix-cache index schedulers route by: which token blocks each slot holds.
    const kvPublisher = lifecycle.own(
      "kv-publisher",
      new KvCachePublisher({ redis, keys, workerId: config.workerId, logger: log, blockSize: config.kvBlockSize }),
    );
    await kvPublisher.start();
    const kvVerify = setInterval(() => void kvPublisher.verify(), config.heartbeatMs);
    kvVerify.unref();
    lifecycle.own("kv-verify", { close: () => clearInterval(kvVerify) });
    const engine = lifecycle.own(
      "engine",
      new Engine({
        loaded,
        metrics,
        logger: log,
        maxQueue: config.maxQueue,
        queueTimeoutMs: config.queueTimeoutMs,
        streamIntervalMs: config.streamIntervalMs,
        onSlotTokens: (slot, tokens) => kvPublisher.setSlotTokens(slot, tokens),
      }),
    );
    const kvTransfer = await setUpKvTransfer({ config, loaded, engine, registry, logger: log, lifecycle });
    metrics.setKvCapacity(engine.slots * engine.contextSize);

    let address = "";
    const snapshot = (): WorkerInfo => {
      const load = engine.load;
      return {
        id: config.workerId,
        address,
        model: loaded.name,
        slots: engine.slots,
        contextSize: engine.contextSize,
        activeSlots: load.activeSlots,
        queued: load.queued,
        maxQueue: config.maxQueue,
        freeKvTokens: engine.freeKvTokens,
        draining: engine.draining || lifecycle.stopping,
        startedAt,
        updatedAt: Date.now(),
      };
    };
    // Owned before the gRPC server so it is closed after it: the registration
    // disappears only once no call can arrive any more.
    const registration = lifecycle.own(
      "registration",
      new WorkerRegistration({
        redis,
        keys,
        logger: log,
        snapshot,
        heartbeatMs: config.heartbeatMs,
        ttlMs: config.heartbeatMs * 3,
      }),
    );
    const grpc = lifecycle.own(
      "grpc-server",
      await startWorkerGrpcServer({
        host: config.host,
        port: config.grpcPort,
        engine,
        workerId: config.workerId,
        model: loaded.name,
        logger: log,
        isServing: () => lifecycle.ready,
        kvImporter: kvTransfer.importer,
        kvTransfer: kvTransfer.handlers,
        credentials: serverCredentials(config.mtls),
        metrics,
      }),
    );
    address = advertisedAddress(config, grpc.port);
    // Closed first: when the drain timed out, generations still running are
    // stopped (UNAVAILABLE) so the gRPC server can close at once instead of
    // waiting out its own grace period.
    lifecycle.own("generations", { close: () => engine.close() });

    lifecycle.onDrain(async () => {
      // Refuse new work first, then tell the cluster at once rather than at the next heartbeat.
      const idle = engine.drain();
      metrics.draining.set(1);
      await registration.drain();
      log.info({ active_slots: engine.load.activeSlots, queued: engine.load.queued }, "draining");
      await idle;
    });
    await registration.start();
    lifecycle.markReady();
    if (options.handleSignals === true) {
      const onSignal = (signal: NodeJS.Signals): void => {
        log.info({ signal }, "shutdown requested");
        void close();
      };
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    }
    logReady(
      log,
      {
        grpc_port: grpc.port,
        ops_port: ops.port,
        address,
        model: loaded.name,
        model_source: loaded.source,
        slots: engine.slots,
        context_size: engine.contextSize,
        threads: config.threads,
      },
    );
    return { workerId: config.workerId, grpcPort: grpc.port, opsPort: ops.port, address, model: loaded.name, close, closed };
  } catch (error: unknown) {
    await close();
    throw error;
  }
}
