import type { ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { toClusterError } from "@smollm/common";
import {
  addHealthService,
  FinishReason,
  KvTransferService,
  WorkerService,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type GenerateRequest,
  type GrpcServer,
} from "@smollm/proto";
import type { Engine, FinishReasonName, GenerateParams } from "./engine.ts";
import type { KvImporter } from "./kv-import.ts";
import type { kvTransferHandlers } from "./kv-transfer-service.ts";
import type { WorkerMetrics } from "./metrics.ts";

/** Options of {@link startWorkerGrpcServer}. */
export interface WorkerGrpcServerOptions {
  host: string;
  port: number;
  engine: Engine;
  workerId: string;
  model: string;
  logger: Logger;
  /** False while draining or not ready: the health service answers NOT_SERVING. */
  isServing: () => boolean;
  /** Pulls KV from other workers for generations that carry a plan (block-parallel prefill, prefix fetch). */
  kvImporter?: KvImporter | undefined;
  /** Serves KvTransferService (prefill blocks and prefixes for other workers) when given. */
  kvTransfer?: ReturnType<typeof kvTransferHandlers> | undefined;
  /** TLS / mutual TLS of the server; plaintext when absent. */
  credentials?: ServerCredentials | undefined;
  /** Per-call latency histograms; none when absent. */
  metrics?: WorkerMetrics | undefined;
}

const FINISH_REASONS: Record<FinishReasonName, FinishReason> = {
  stop: FinishReason.STOP,
  length: FinishReason.LENGTH,
  cancelled: FinishReason.CANCELLED,
};

/** Maps a wire request to the engine's (which validates it). */
export function toGenerateParams(request: GenerateRequest, requestId: string): GenerateParams {
  const s = request.sampling;
  return {
    requestId,
    promptTokens: request.promptTokens,
    maxTokens: request.maxTokens,
    stop: request.stop,
    ignoreEos: request.ignoreEos,
    grammar: request.grammar,
    jsonSchema: request.jsonSchema,
    jsonPrefix: request.jsonPrefix,
    jsonSuffix: request.jsonSuffix,
    jsonMaxValues: request.jsonMaxValues,
    logprobs: request.logprobs,
    topLogprobs: request.topLogprobs,
    sampling: {
      temperature: s?.temperature ?? 0,
      topP: s?.topP ?? 0,
      topK: s?.topK ?? 0,
      minP: s?.minP ?? 0,
      seed: s?.seed,
      presencePenalty: s?.presencePenalty ?? 0,
      frequencyPenalty: s?.frequencyPenalty ?? 0,
      repeatPenalty: s?.repeatPenalty ?? 0,
    },
  };
}

/** Serves WorkerService (Generate, GetStatus) and grpc.health.v1 Check. */
export async function startWorkerGrpcServer(options: WorkerGrpcServerOptions): Promise<GrpcServer> {
  const { engine, workerId, logger } = options;
  const grpcOptions = { host: options.host, port: options.port, ...(options.credentials ? { credentials: options.credentials } : {}) };
  return startGrpcServer(grpcOptions, (server) => {
    server.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(
        WorkerService,
        {
          generate: async function* (request, context) {
            const requestId = request.requestId || (context.metadata.get("x-request-id")[0]?.toString() ?? "");
            const params = toGenerateParams(request, requestId);
            const calledAt = performance.now();
            // Answer at once, before waiting for a slot: these response headers
            // tell the gateway this worker is alive and has the call, so it can
            // tell a hung worker (no answer within its ack timeout: the request
            // goes elsewhere) from a busy one (queued: the tokens come later).
            context.sendHeaders({ "x-smollm-worker-id": workerId });
            const kvHooks = options.kvImporter?.hooksFor({
              requestId,
              promptTokens: request.promptTokens,
              parallelPrefill: request.parallelPrefill,
              kvSource: request.kvSource,
            });
            for await (const event of engine.generate(params, context.signal, kvHooks)) {
              switch (event.type) {
                case "delta":
                  yield {
                    event: {
                      case: "delta",
                      value: {
                        text: event.text,
                        tokens: event.tokens,
                        ...(event.logprobs === undefined
                          ? {}
                          : {
                              logprobs: event.logprobs.map((l) => ({
                                sampled: { token: l.token, logprob: l.logprob, bytes: l.bytes },
                                top: l.top,
                              })),
                            }),
                      },
                    },
                  };
                  break;
                case "started":
                  yield {
                    event: {
                      case: "started",
                      value: {
                        workerId,
                        slot: event.slot,
                        cachedTokens: event.cachedTokens,
                        promptTokens: event.promptTokens,
                        queueMs: event.queueMs,
                      },
                    },
                  };
                  break;
                case "finished": {
                  const durationMs = performance.now() - calledAt;
                  options.metrics?.requestDuration.observe(durationMs / 1000);
                  if (event.completionTokens > 0) options.metrics?.decodeDuration.observe(event.decodeMs / 1000);
                  // One line per generation, joined to the gateway's and the scheduler's by request_id.
                  logger.info(
                    {
                      request_id: requestId,
                      finish_reason: event.reason,
                      prompt_tokens: event.promptTokens,
                      cached_tokens: event.cachedTokens,
                      completion_tokens: event.completionTokens,
                      prefill_ms: Math.round(event.prefillMs),
                      decode_ms: Math.round(event.decodeMs),
                      duration_ms: Math.round(durationMs),
                    },
                    "generation finished",
                  );
                  yield {
                    event: {
                      case: "finished",
                      value: {
                        reason: FINISH_REASONS[event.reason],
                        usage: {
                          promptTokens: event.promptTokens,
                          completionTokens: event.completionTokens,
                          cachedTokens: event.cachedTokens,
                        },
                        prefillMs: event.prefillMs,
                        decodeMs: event.decodeMs,
                      },
                    },
                  };
                  break;
                }
              }
            }
          },
          getStatus: async () => ({
            workerId,
            model: options.model,
            slots: engine.slots,
            activeSlots: engine.load.activeSlots,
            queued: engine.load.queued,
            contextSize: engine.contextSize,
            draining: engine.draining,
          }),
        },
        {
          onError: (method, error, context) => {
            const e = toClusterError(error);
            // Client-caused and load errors are routine; only internal ones are worth a warning.
            const level = e.code === "internal" ? "error" : "debug";
            const requestId = context.metadata.get("x-request-id")[0];
            logger[level]({ err: error, method, code: e.code, request_id: typeof requestId === "string" ? requestId : undefined }, "grpc call failed");
          },
        },
      ),
    );
    addHealthService(server, [WorkerService.typeName], options.isServing);
    if (options.kvTransfer !== undefined) {
      server.addService(
        serviceDefinition(KvTransferService),
        serviceImplementation(KvTransferService, options.kvTransfer, {
          onError: (method, error) => {
            const code = toClusterError(error).code;
            logger[code === "internal" ? "error" : "debug"]({ err: error, method, code }, "kv transfer call failed");
          },
        }),
      );
    }
  });
}
