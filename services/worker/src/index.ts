export { startWorker, type RunningWorker, type StartWorkerOptions } from "./worker.ts";
export { loadConfig, DEFAULT_MODELS_DIR, WORKER_CONFIG_DEFAULTS, type WorkerConfig, type WorkerGpu } from "./config.ts";
export {
  Engine,
  type EngineOptions,
  type FinishReasonName,
  type GenerateParams,
  type GenerationEvent,
  type GenerationFinishedEvent,
  type GenerationStartedEvent,
  type SamplingOptions,
  type TextDeltaEvent,
} from "./engine.ts";
export { loadWorkerModel, type LoadedModel, type ModelLoadConfig } from "./model-loader.ts";
export { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
