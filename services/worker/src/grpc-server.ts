import type { Logger } from "pino";
import { toClusterError } from "@smollm/common";
import {
  addHealthService,
  FinishReason,
  WorkerService,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type GenerateRequest,
  type GrpcServer,
} from "@smollm/proto";
import type { Engine, FinishReasonName, GenerateParams } from "./engine.ts";

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
  return startGrpcServer({ host: options.host, port: options.port }, (server) => {
    server.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(
        WorkerService,
        {
          generate: async function* (request, context) {
            const requestId = request.requestId || (context.metadata.get("x-request-id")[0]?.toString() ?? "");
            const params = toGenerateParams(request, requestId);
            for await (const event of engine.generate(params, context.signal)) {
              switch (event.type) {
                case "delta":
                  yield { event: { case: "delta", value: { text: event.text, tokens: event.tokens } } };
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
                case "finished":
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
          onError: (method, error) => {
            const e = toClusterError(error);
            // Client-caused and load errors are routine; only internal ones are worth a warning.
            const level = e.code === "internal" ? "error" : "debug";
            logger[level]({ err: error, method, code: e.code }, "grpc call failed");
          },
        },
      ),
    );
    addHealthService(server, [WorkerService.typeName], options.isServing);
  });
}
