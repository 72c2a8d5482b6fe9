/**
 * Pre-load validation of smollm3 GGUF files. llama.cpp aborts the whole process (GGML_ASSERT,
 * exit 134) when `smollm3.feed_forward_length` or `.attention.head_count` is missing, and only
 * logs why other files fail to load — so every long-lived process checks a file here first.
 * Only the header is read; the file is never handed to llama.cpp.
 */
import { readGgufHeader, type GgufReadValue } from "./gguf-reader.ts";

/** Metadata keys llama.cpp needs to load a smollm3 model (missing ones fail or abort). */
export const SMOLLM3_REQUIRED_KEYS = [
  "general.architecture",
  "smollm3.context_length",
  "smollm3.embedding_length",
  "smollm3.block_count",
  "smollm3.feed_forward_length",
  "smollm3.attention.head_count",
  "smollm3.attention.layer_norm_rms_epsilon",
  "tokenizer.ggml.model",
  "tokenizer.ggml.tokens",
  "tokenizer.ggml.merges",
] as const;

/** Keys that load without error when missing but make the model behave wrongly. */
export const SMOLLM3_RECOMMENDED_KEYS = [
  "smollm3.attention.head_count_kv",
  "smollm3.rope.freq_base",
  "smollm3.rope.dimension_count",
  "tokenizer.ggml.pre",
  "tokenizer.ggml.token_type",
  "tokenizer.ggml.bos_token_id",
  "tokenizer.ggml.eos_token_id",
  "tokenizer.chat_template",
] as const;

/** Pre-tokenizer names this llama.cpp build accepts and that tokenize like SmolLM3 (Llama-3 regex). */
export const SMOLLM3_COMPATIBLE_PRE_TOKENIZERS = ["llama-bpe", "llama3", "llama-v3"] as const;

/** Why a GGUF was rejected. `missingKeys` and `problems` are also in the message. */
export class GgufValidationError extends Error {
  override readonly name = "GgufValidationError";
  constructor(
    readonly path: string,
    readonly missingKeys: readonly string[],
    readonly problems: readonly string[],
  ) {
    const parts: string[] = [];
    if (missingKeys.length > 0) parts.push(`missing required metadata key(s): ${missingKeys.join(", ")}`);
    parts.push(...problems);
    super(`invalid smollm3 GGUF ${path}: ${parts.join("; ")}`);
  }
}

export interface SmolLM3GgufSummary {
  path: string;
  architecture: string;
  /** `smollm3.context_length` (training context; YaRN may extend it at load time). */
  contextLength: number;
  layers: number;
  embeddingLength: number;
  feedForwardLength: number;
  headCount: number;
  /** `smollm3.attention.head_count_kv`, or headCount when absent (llama.cpp's default). */
  headCountKv: number;
  vocabSize: number;
  tokenizerModel: string;
  /** `tokenizer.ggml.pre`, or undefined when absent. */
  tokenizerPre: string | undefined;
  bosTokenId: number | undefined;
  eosTokenId: number | undefined;
  hasChatTemplate: boolean;
  /** Non-fatal findings (missing recommended keys, unusual pre-tokenizer). */
  warnings: string[];
}

function asNumber(v: GgufReadValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

/**
 * Checks that `path` is a GGUF llama.cpp can load as SmolLM3 (architecture `smollm3`, every
 * key of SMOLLM3_REQUIRED_KEYS present with a sane value, gpt2 tokenizer) and returns a summary.
 * Throws GgufValidationError listing every missing key / problem at once; a file that is not
 * GGUF at all gives GgufFormatError.
 */
export async function validateSmolLM3Gguf(path: string): Promise<SmolLM3GgufSummary> {
  // Merges are the bulk of a 128k vocab header and only their presence matters here.
  const header = await readGgufHeader(path, { skipKeys: ["tokenizer.ggml.merges"] });
  const md = header.metadata;
  const has = (k: string): boolean => header.metadataTypes.has(k);
  const missing = SMOLLM3_REQUIRED_KEYS.filter((k) => !has(k));
  const problems: string[] = [];
  const warnings: string[] = [];

  const arch = md.get("general.architecture");
  if (has("general.architecture") && arch !== "smollm3") problems.push(`general.architecture is ${JSON.stringify(arch)}, expected "smollm3"`);
  const positive = (k: string): number => {
    const v = asNumber(md.get(k));
    if (has(k) && (v === undefined || !Number.isFinite(v) || v <= 0)) problems.push(`${k} must be a positive number, got ${String(md.get(k))}`);
    return v ?? 0;
  };
  const contextLength = positive("smollm3.context_length");
  const embeddingLength = positive("smollm3.embedding_length");
  const layers = positive("smollm3.block_count");
  const feedForwardLength = positive("smollm3.feed_forward_length");
  const headCount = positive("smollm3.attention.head_count");
  positive("smollm3.attention.layer_norm_rms_epsilon");
  const headCountKv = has("smollm3.attention.head_count_kv") ? positive("smollm3.attention.head_count_kv") : headCount;
  if (headCount > 0 && headCountKv > 0 && headCount % headCountKv !== 0) problems.push(`attention.head_count (${headCount}) is not a multiple of head_count_kv (${headCountKv})`);
  if (headCount > 0 && embeddingLength > 0 && embeddingLength % headCount !== 0 && !has("smollm3.attention.key_length")) {
    problems.push(`embedding_length (${embeddingLength}) is not divisible by head_count (${headCount})`);
  }

  const tokModel = md.get("tokenizer.ggml.model");
  if (has("tokenizer.ggml.model") && tokModel !== "gpt2") problems.push(`tokenizer.ggml.model is ${JSON.stringify(tokModel)}, expected "gpt2"`);
  const tokens = md.get("tokenizer.ggml.tokens");
  if (has("tokenizer.ggml.tokens") && (!Array.isArray(tokens) || tokens.length === 0)) problems.push("tokenizer.ggml.tokens must be a non-empty string array");
  const vocabSize = Array.isArray(tokens) ? tokens.length : 0;
  const pre = md.get("tokenizer.ggml.pre");
  const tokenizerPre = typeof pre === "string" ? pre : undefined;

  for (const k of ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"]) {
    const id = asNumber(md.get(k));
    if (id !== undefined && vocabSize > 0 && (id < 0 || id >= vocabSize)) problems.push(`${k} = ${id} is outside the vocabulary (size ${vocabSize})`);
  }
  const types = md.get("tokenizer.ggml.token_type");
  if (Array.isArray(types) && vocabSize > 0 && types.length !== vocabSize) problems.push(`tokenizer.ggml.token_type has ${types.length} entries, tokens has ${vocabSize}`);

  for (const k of SMOLLM3_RECOMMENDED_KEYS) if (!has(k)) warnings.push(`recommended key ${k} is missing`);
  if (tokenizerPre !== undefined && !(SMOLLM3_COMPATIBLE_PRE_TOKENIZERS as readonly string[]).includes(tokenizerPre)) {
    warnings.push(`tokenizer.ggml.pre is ${JSON.stringify(tokenizerPre)}; SmolLM3 uses "llama-bpe"`);
  }

  if (missing.length > 0 || problems.length > 0) throw new GgufValidationError(path, missing, problems);
  const chat = md.get("tokenizer.chat_template");
  return {
    path,
    architecture: String(arch),
    contextLength,
    layers,
    embeddingLength,
    feedForwardLength,
    headCount,
    headCountKv,
    vocabSize,
    tokenizerModel: String(tokModel),
    tokenizerPre,
    bosTokenId: asNumber(md.get("tokenizer.ggml.bos_token_id")),
    eosTokenId: asNumber(md.get("tokenizer.ggml.eos_token_id")),
    hasChatTemplate: typeof chat === "string" && chat.length > 0,
    warnings,
  };
}
