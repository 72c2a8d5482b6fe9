import { performance } from "node:perf_hooks";
import { ContextLengthError, InvalidRequestError, Lifecycle, startOpsServer, toClusterError, type Logger } from "@smollm/common";
import { ClusterKeys, KvIndexSync, WorkerDirectory, blockHashes, closeRedis, connectRedis } from "@smollm/cluster-state";
import { loadTokenizer, resolveModel, type Tokenizer } from "@smollm/model";
import { SchedulerService, addHealthService, serverCredentials, serviceDefinition, serviceImplementation, startGrpcServer } from "@smollm/proto";
import type { SchedulerConfig } from "./config.ts";
import { createSchedulerMetrics } from "./metrics.ts";
import { Router } from "./router.ts";
import { createKvPlanMetrics } from "./metrics.ts";
import { planKvTransfer, type PrefillPlannerOptions } from "./prefill-planner.ts";
import { KvCapacityScorer } from "./scorers/kv-scorer.ts";
import { LoadScorer } from "./scorers/load-scorer.ts";
import { PrefixIndexUnavailableError, PrefixScorer } from "./scorers/prefix-scorer.ts";

/** A running scheduler. */
export interface RunningScheduler {
  readonly grpcPort: number;
  readonly opsPort: number;
  readonly lifecycle: Lifecycle;
  /** Drains and closes everything; idempotent. */
  close(): Promise<void>;
}

/** Largest prompt accepted for routing, in characters (a 128k-token prompt is ~500k chars). */
const MAX_PROMPT_CHARS = 4 * 1024 * 1024;

/** Starts the scheduler: tokenizer, worker directory (Redis), router, gRPC and ops servers. */
export async function startScheduler(
  config: SchedulerConfig,
  logger: Logger,
  options: { exitProcess?: boolean } = {},
): Promise<RunningScheduler> {
  const lifecycle = new Lifecycle({ logger, drainTimeoutMs: config.drainTimeoutMs, exitProcess: options.exitProcess ?? false });
  const metrics = createSchedulerMetrics();
  const model = await resolveModel({
    model: config.model,
    modelsDir: config.modelsDir,
    fallback: config.modelFallback,
    logger,
  });
  const tokenizer: Tokenizer = lifecycle.own("tokenizer", await loadTokenizer(model.path));
  logger.info({ model: model.name, model_path: model.path, source: model.source }, "tokenizer loaded");

  const keys = new ClusterKeys(config.redisPrefix);
  const redis = connectRedis({ url: config.redisUrl, logger, name: "scheduler" });
  const subscriber = connectRedis({ url: config.redisUrl, logger, name: "scheduler-sub" });
  const eventReader = connectRedis({ url: config.redisUrl, logger, name: "scheduler-kv-events" });
  lifecycle.own("redis", { close: () => closeRedis(redis) });
  lifecycle.own("redis-sub", { close: () => closeRedis(subscriber) });
  lifecycle.own("redis-kv-events", { close: () => closeRedis(eventReader) });
  const directory = lifecycle.own(
    "worker-directory",
    new WorkerDirectory({ redis, subscriber, keys, logger, refreshMs: config.registryRefreshMs }),
  );
  const kv = new KvIndexSync({
    redis,
    reader: eventReader,
    keys,
    logger,
    workerIds: () => directory.workers().map((w) => w.id),
  });
  const router = new Router({
    mode: config.policy === "round_robin" ? "round_robin" : "scored",
    imbalance: { absolute: config.imbalanceAbs, relative: config.imbalanceRel },
    scorers: [
      { scorer: new PrefixScorer(config.prefixMinRatio), weight: config.weightPrefix },
      { scorer: new LoadScorer(), weight: config.weightLoad },
      { scorer: new KvCapacityScorer(), weight: config.weightKv },
    ],
    onScorerError: (scorer, error) => {
      if (error instanceof PrefixIndexUnavailableError) return; // the outcome label says so
      metrics.scorerFailures.inc({ scorer });
      logger.warn({ err: error, scorer }, "scorer failed; routing without it");
    },
  });
  let routed = new Set<string>();
  directory.onChange((workers) => {
    const live = new Set(workers.map((w) => w.id));
    for (const id of kv.index.workers()) {
      if (!live.has(id)) {
        kv.dropWorker(id);
        router.forget(id);
      }
    }
    // A worker (re)joining routing gets its blocks reloaded: one dropped while
    // alive (registry briefly empty after a Redis flush) would otherwise keep
    // only the blocks it changes from now on.
    for (const id of live) if (!routed.has(id)) void kv.resyncWorker(id);
    routed = live;
    metrics.workers.set({ state: "ready" }, workers.filter((w) => !w.draining).length);
    metrics.workers.set({ state: "draining" }, workers.filter((w) => w.draining).length);
  });
  await directory.start();
  await kv.start();
  lifecycle.own("kv-index", kv);
  let eventsCounted = 0;
  const gauges = setInterval(() => {
    metrics.indexBlocks.set(kv.index.size);
    metrics.indexHealthy.set(kv.healthy ? 1 : 0);
    metrics.eventLagSeconds.set(kv.lagMs / 1000);
    // The follower counts since start; the counter takes the difference.
    metrics.eventsApplied.inc(kv.eventsApplied - eventsCounted);
    eventsCounted = kv.eventsApplied;
    metrics.registryStale.set(directory.stale ? 1 : 0);
  }, 1_000);
  gauges.unref();
  lifecycle.own("gauges", { close: () => clearInterval(gauges) });

  // Long prompts prefilled on several workers, cached prefixes fetched across workers (docs/parallel-prefill.md).
  const plannerOptions: PrefillPlannerOptions = {
    parallelMinTokens: config.parallelPrefillMinTokens,
    parallelMaxWorkers: config.parallelPrefillMaxWorkers,
    parallelMinBlockTokens: config.parallelPrefillMinBlockTokens,
    parallelMaxBlockTokens: config.parallelPrefillMaxBlockTokens,
    anchor: config.parallelPrefillAnchor,
    prefixFetchMinTokens: config.prefixFetchMinTokens,
  };
  const kvPlanMetrics = createKvPlanMetrics(metrics.registry);
  const grpc = await startGrpcServer({ host: config.host, port: config.grpcPort, credentials: serverCredentials(config.mtls) }, (server) => {
    addHealthService(server, [SchedulerService.typeName], () => lifecycle.ready);
    server.addService(
      serviceDefinition(SchedulerService),
      serviceImplementation(
        SchedulerService,
        {
          route: async (request) => {
            // No readiness check: on SIGTERM the server sends GOAWAY (see the drain hook), so
            // calls still arriving are ones the client sent before it knew; routing is instant
            // and stateless, so serving them beats failing them.
            if (request.prompt.length === 0) throw new InvalidRequestError("prompt is empty", { param: "messages" });
            if (request.prompt.length > MAX_PROMPT_CHARS) {
              throw new InvalidRequestError(`prompt is longer than ${MAX_PROMPT_CHARS} characters`, { param: "messages" });
            }
            const t0 = performance.now();
            const promptTokens = tokenizer.tokenize(request.prompt);
            const t1 = performance.now();
            if (config.maxPromptTokens > 0 && promptTokens.length > config.maxPromptTokens) {
              throw new ContextLengthError(
                `This server accepts prompts of at most ${config.maxPromptTokens} tokens; your messages resulted in ${promptTokens.length} tokens. Please reduce the length of the messages.`,
                { param: "messages" },
              );
            }
            metrics.tokenizeSeconds.observe((t1 - t0) / 1000);
            metrics.registryStale.set(directory.stale ? 1 : 0);
            const workers = directory.workers();
            let cachedTokens: Map<string, number> | undefined;
            if (kv.healthy) {
              const live = new Set(workers.map((w) => w.id));
              const blocks = kv.index.match(blockHashes(promptTokens, config.kvBlockSize), (id) => live.has(id));
              cachedTokens = new Map([...blocks].map(([id, n]) => [id, Math.min(n * config.kvBlockSize, promptTokens.length)]));
            }
            let decision;
            try {
              decision = router.route(
                { requestId: request.requestId, promptTokens, maxTokens: request.maxTokens, ...(cachedTokens ? { cachedTokens } : {}) },
                workers,
                new Set(request.excludeWorkers),
                new Set(request.avoidWorkers),
              );
            } catch (error: unknown) {
              metrics.decisions.inc({ outcome: `rejected_${(error as { code?: string }).code ?? "error"}` });
              throw error;
            }
            metrics.decisionSeconds.observe((performance.now() - t1) / 1000);
            metrics.decisions.inc({ outcome: decision.outcome });
            metrics.promptTokens.inc(promptTokens.length);
            metrics.expectedCachedTokens.inc(decision.expectedCachedTokens);
            // One line per routed request, joined to the gateway's and the worker's by request_id.
            logger.info(
              {
                request_id: request.requestId,
                worker_id: decision.worker.id,
                outcome: decision.outcome,
                prompt_tokens: promptTokens.length,
                expected_cached_tokens: decision.expectedCachedTokens,
                excluded_workers: request.excludeWorkers.length > 0 ? request.excludeWorkers : undefined,
                avoided_workers: request.avoidWorkers.length > 0 ? request.avoidWorkers : undefined,
              },
              "routed",
            );
            const excluded = new Set(request.excludeWorkers);
            const kvPlan = planKvTransfer(
              {
                promptTokens: promptTokens.length,
                maxTokens: request.maxTokens,
                exactPrefill: request.exactPrefill,
                decoder: decision.worker,
                workers: workers.filter((w) => !w.draining && !excluded.has(w.id)),
                cachedTokens,
              },
              plannerOptions,
            );
            if (kvPlan.parallelPrefill !== undefined) kvPlanMetrics.plans.inc({ kind: "parallel_prefill" });
            if (kvPlan.kvSource !== undefined) kvPlanMetrics.plans.inc({ kind: "prefix_fetch" });
            if (kvPlan.parallelPrefill !== undefined || kvPlan.kvSource !== undefined) {
              logger.info(
                {
                  request_id: request.requestId,
                  worker_id: decision.worker.id,
                  blocks: kvPlan.parallelPrefill?.blocks.map((b) => `${b.workerId}:${b.start}-${b.end}`),
                  anchor_tokens: kvPlan.parallelPrefill?.fullAnchor === true ? "full" : kvPlan.parallelPrefill?.anchorTokens,
                  prefix_source: kvPlan.kvSource === undefined ? undefined : `${kvPlan.kvSource.workerId}:${kvPlan.kvSource.tokens}`,
                },
                "kv transfer planned",
              );
            }
            return {
              workerId: decision.worker.id,
              workerAddress: decision.worker.address,
              promptTokens,
              expectedCachedTokens: decision.expectedCachedTokens,
              contextSize: decision.worker.contextSize,
              outcome: decision.outcome,
              ...(kvPlan.parallelPrefill === undefined
                ? {}
                : { parallelPrefill: { ...kvPlan.parallelPrefill, blocks: kvPlan.parallelPrefill.blocks.map((b) => ({ ...b })) } }),
              ...(kvPlan.kvSource === undefined ? {} : { kvSource: { ...kvPlan.kvSource } }),
            };
          },
        },
        {
          onError: (method, error, context) => {
            const e = toClusterError(error);
            metrics.errors.inc({ code: e.code });
            const requestId = context.metadata.get("x-request-id")[0];
            const line = { err: error, method, code: e.code, request_id: typeof requestId === "string" ? requestId : undefined };
            if (e.code === "internal") logger.error(line, "call failed");
            else logger.info(line, "call failed");
          },
        },
      ),
    );
  });
  lifecycle.own("grpc", { close: () => grpc.close() });
  // Draining: GOAWAY at once (clients open their next calls elsewhere), in-flight calls finish.
  lifecycle.onDrain(() => grpc.close(config.drainTimeoutMs));
  const ops = await startOpsServer({ host: config.host, port: config.opsPort, registry: metrics.registry, isReady: () => lifecycle.ready });
  lifecycle.own("ops", ops);
  lifecycle.markReady();
  return { grpcPort: grpc.port, opsPort: ops.port, lifecycle, close: () => lifecycle.shutdown() };
}
