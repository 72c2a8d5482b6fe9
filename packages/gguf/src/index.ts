/**
 * @smollm/gguf — tiny SmolLM3-shaped GGUF models for tests, a GGUF writer/reader, a byte-level
 * BPE tokenizer compatible with llama.cpp's `llama-bpe`, and pre-load validation.
 */
export { ensureTinyModel, defaultModelCacheDir, tinyModelFileName } from "./model-cache.ts";
export {
  TINY_MODEL_GENERATOR_VERSION,
  resolveTinyModelOptions,
  writeTinyModel,
  type TinyModelOptions,
  type ResolvedTinyModelOptions,
} from "./tiny-model.ts";
export {
  validateSmolLM3Gguf,
  GgufValidationError,
  SMOLLM3_REQUIRED_KEYS,
  SMOLLM3_RECOMMENDED_KEYS,
  type SmolLM3GgufSummary,
} from "./validate.ts";
export {
  GgufWriter,
  GgufValueType,
  GgmlType,
  GGUF_DEFAULT_ALIGNMENT,
  type GgufValue,
  type GgufTensor,
  type GgufTensorData,
} from "./gguf-writer.ts";
export { readGgufHeader, GgufFormatError, type GgufHeader, type GgufReadValue, type GgufTensorInfo } from "./gguf-reader.ts";
export { ByteLevelBpe, TokenType, type ByteLevelBpeVocab, type EncodeOptions } from "./bpe-tokenizer.ts";
export { readTokenBytesTable, loadByteLevelBpe } from "./token-bytes.ts";
export { SMOLLM3_SPECIAL_TOKENS, type SpecialTokenSpec, type SmolLM3SpecialTokenName } from "./special-tokens.ts";
export { SMOLLM3_CHAT_TEMPLATE } from "./chat-template.ts";
