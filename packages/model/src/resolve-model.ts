import { access } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { resolveModelFile } from "node-llama-cpp";
import type { Logger } from "pino";
import { ensureTinyModel, validateSmolLM3Gguf, type SmolLM3GgufSummary } from "@smollm/gguf";
import { ClusterError } from "@smollm/common";

/** The real default: SmolLM3-3B, Q4_K_M, from the GGUF repository of ggml-org. */
export const DEFAULT_MODEL = "hf:ggml-org/SmolLM3-3B-GGUF:Q4_K_M";

/** What to do when the configured model cannot be had (offline, missing file). */
export type ModelFallback = "none" | "tiny";

/** Options of {@link resolveModel}. */
export interface ResolveModelOptions {
  /** A local GGUF path or an `hf:` URI (see node-llama-cpp's model URIs). */
  model: string;
  /** Where `hf:` models are looked up and downloaded to. */
  modelsDir: string;
  /**
   * `none` (production): fail with a clear message. `tiny` (local start,
   * tests): use the generated tiny random-weight model, with a loud warning.
   */
  fallback: ModelFallback;
  /** Allow downloading `hf:` models; default true. */
  download?: boolean;
  logger: Logger;
}

/** A model file ready to load. */
export interface ResolvedModel {
  path: string;
  /** The name to report (the configured model, or `tiny-smollm3` on fallback). */
  name: string;
  source: "local" | "hf" | "tiny-fallback" | "tiny";
  summary: SmolLM3GgufSummary;
}

/** The special model name that always means the generated tiny model. */
export const TINY_MODEL = "tiny";

/**
 * Resolves a model reference to a validated local GGUF file. The file is
 * validated before anyone loads it, because llama.cpp aborts the whole
 * process on some missing keys.
 */
export async function resolveModel(options: ResolveModelOptions): Promise<ResolvedModel> {
  const { model, logger } = options;
  if (model === TINY_MODEL || model.startsWith("tiny:")) {
    const vocab = model === "tiny:llama3" ? "llama3" : "small";
    const path = await ensureTinyModel({ vocab });
    return { path, name: `smollm3-tiny-${vocab}`, source: "tiny", summary: await validateSmolLM3Gguf(path) };
  }
  let path: string;
  let source: ResolvedModel["source"];
  try {
    if (model.startsWith("hf:") || /^https?:\/\//.test(model)) {
      source = "hf";
      path = await resolveModelFile(model, {
        directory: options.modelsDir,
        download: options.download === false ? false : "auto",
        cli: false,
      });
    } else {
      source = "local";
      path = resolvePath(model);
      await access(path);
    }
  } catch (error: unknown) {
    if (options.fallback !== "tiny") {
      throw new ClusterError(
        "failed_precondition",
        `model "${model}" cannot be loaded: ${error instanceof Error ? error.message : String(error)}. ` +
          `Give a local GGUF path or an hf: URI reachable from this machine (models dir: ${options.modelsDir}).`,
        { cause: error },
      );
    }
    logger.warn(
      { model, err: error },
      "!!! MODEL UNAVAILABLE — FALLING BACK TO THE GENERATED TINY RANDOM-WEIGHT MODEL: output is gibberish. " +
        "This is for local development only; production workers run with --model-fallback none.",
    );
    const tinyPath = await ensureTinyModel({});
    return { path: tinyPath, name: "smollm3-tiny-small", source: "tiny-fallback", summary: await validateSmolLM3Gguf(tinyPath) };
  }
  return { path, name: model, source, summary: await validateSmolLM3Gguf(path) };
}
