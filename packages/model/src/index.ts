export {
  DEFAULT_MODEL,
  TINY_MODEL,
  resolveModel,
  type ModelFallback,
  type ResolveModelOptions,
  type ResolvedModel,
} from "./resolve-model.ts";
export { loadTokenizer, type Tokenizer } from "./tokenizer.ts";
