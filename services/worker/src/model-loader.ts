import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import type { Logger } from "pino";
import { readTokenBytesTable } from "@smollm/gguf";
import { resolveModel, type ResolvedModel } from "@smollm/model";
import { observedMaximumParallelism, type DecodeBatchListener } from "./batch-observer.ts";
import type { WorkerConfig } from "./config.ts";

/** The model in memory with the one context all slots share. `close()` is idempotent. */
export interface LoadedModel {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  /** The reported model name (the configured one, or the tiny model's on fallback). */
  readonly name: string;
  readonly path: string;
  readonly source: ResolvedModel["source"];
  /** Raw bytes of every token id, for streaming UTF-8 (see TokenTextStream). */
  readonly tokenBytes: readonly Uint8Array[];
  /** 1 where the token id ends generation (im_end, end_of_text, …). */
  readonly endOfGeneration: Uint8Array;
  readonly vocabSize: number;
  /** Tokens each slot holds (llama.cpp may round the configured size up). */
  readonly contextSize: number;
  close(): Promise<void>;
}

export type ModelLoadConfig = Pick<
  WorkerConfig,
  "model" | "modelsDir" | "modelFallback" | "threads" | "gpu" | "slots" | "contextSize" | "batchSize" | "flashAttention"
>;

const LLAMA_LOG_TO_PINO: Record<LlamaLogLevel, "fatal" | "error" | "warn" | "info" | "debug" | "trace"> = {
  [LlamaLogLevel.disabled]: "trace",
  [LlamaLogLevel.fatal]: "fatal",
  [LlamaLogLevel.error]: "error",
  [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "info",
  [LlamaLogLevel.log]: "info",
  [LlamaLogLevel.debug]: "debug",
};

/**
 * Resolves, validates and loads the model, then creates ONE context with a
 * sequence per slot so node-llama-cpp batches all slots into one decode per
 * step. The file is validated (by `resolveModel`) before llama.cpp sees it,
 * because a few missing smollm3 keys abort the whole process.
 */
export async function loadWorkerModel(
  config: ModelLoadConfig,
  logger: Logger,
  /** Observes every decode batch (metrics); without one node-llama-cpp's own strategy runs. */
  onDecodeBatch?: DecodeBatchListener,
): Promise<LoadedModel> {
  const resolved = await resolveModel({
    model: config.model,
    modelsDir: config.modelsDir,
    fallback: config.modelFallback,
    logger,
  });
  for (const warning of resolved.summary.warnings) logger.warn({ model: resolved.name }, `gguf: ${warning}`);
  const tokenBytesPromise = readTokenBytesTable(resolved.path);

  const llama = await getLlama({
    gpu: config.gpu,
    // Explicit: the default max(cores, 4) oversubscribes small machines badly.
    maxThreads: config.threads,
    // Production never compiles llama.cpp at start; a missing binary is an error.
    build: "never",
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (text !== "") logger[LLAMA_LOG_TO_PINO[level] ?? "info"]({ component: "llama.cpp" }, text);
    },
  });
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  try {
    model = await llama.loadModel({ modelPath: resolved.path, defaultContextFlashAttention: config.flashAttention });
    context = await model.createContext({
      sequences: config.slots,
      contextSize: config.contextSize,
      batchSize: config.batchSize,
      flashAttention: config.flashAttention,
      threads: config.threads,
      // Fail at start rather than silently serving a smaller context than configured.
      failedCreationRemedy: false,
      batching: {
        itemPrioritizationStrategy: onDecodeBatch === undefined ? "maximumParallelism" : observedMaximumParallelism(onDecodeBatch),
      },
    });
    const tokenBytes = await tokenBytesPromise;
    const vocabSize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    if (tokenBytes.length !== vocabSize) {
      throw new Error(`token table has ${tokenBytes.length} entries but the model has ${vocabSize} tokens`);
    }
    const endOfGeneration = new Uint8Array(vocabSize);
    for (let id = 0; id < vocabSize; id++) if (model.isEogToken(id as Token)) endOfGeneration[id] = 1;

    const owned = { llama, model, context };
    let closing: Promise<void> | undefined;
    return {
      ...owned,
      name: resolved.name,
      path: resolved.path,
      source: resolved.source,
      tokenBytes,
      endOfGeneration,
      vocabSize,
      contextSize: context.contextSize,
      close: () => {
        closing ??= (async () => {
          await owned.context.dispose();
          await owned.model.dispose();
          await owned.llama.dispose();
        })();
        return closing;
      },
    };
  } catch (error: unknown) {
    await context?.dispose().catch(() => {});
    await model?.dispose().catch(() => {});
    await llama.dispose().catch(() => {});
    throw error;
  }
}
