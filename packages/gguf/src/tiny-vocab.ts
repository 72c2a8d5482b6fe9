/**
 * Vocabularies for tiny models: the "small" one trained from the embedded corpus, in the same
 * shape as the real vocabulary (byte tokens, merges, SmolLM3 special tokens as Control).
 */
import { trainByteLevelBpe } from "./bpe-trainer.ts";
import { TokenType } from "./bpe-tokenizer.ts";
import { TRAINING_CORPUS } from "./corpus.ts";
import { SMOLLM3_SPECIAL_TOKENS } from "./special-tokens.ts";

/** A complete gpt2-type vocabulary ready to be written to GGUF. */
export interface TinyVocab {
  tokens: string[];
  tokenTypes: Int32Array;
  merges: string[];
  bosId: number;
  eosId: number;
  padId: number;
}

/** Default number of normal (byte + merged) tokens of the "small" vocabulary. */
export const DEFAULT_SMALL_VOCAB_NORMAL_TOKENS = 1024;

const smallCache = new Map<number, TinyVocab>();

/**
 * Trains (once per process and size) the "small" vocabulary: 256 byte tokens + merges learned
 * from TRAINING_CORPUS up to `normalTokens` (default 1024), then SmolLM3's special tokens
 * appended in SMOLLM3_SPECIAL_TOKENS order.
 */
export function buildSmallVocab(normalTokens: number = DEFAULT_SMALL_VOCAB_NORMAL_TOKENS): TinyVocab {
  const cached = smallCache.get(normalTokens);
  if (cached) return cached;
  const { tokens, merges } = trainByteLevelBpe(TRAINING_CORPUS, { vocabSize: normalTokens });
  const all = [...tokens];
  const types: number[] = tokens.map(() => TokenType.Normal);
  const ids = {} as Record<keyof typeof SMOLLM3_SPECIAL_TOKENS, number>;
  for (const [name, spec] of Object.entries(SMOLLM3_SPECIAL_TOKENS) as [keyof typeof SMOLLM3_SPECIAL_TOKENS, (typeof SMOLLM3_SPECIAL_TOKENS)[keyof typeof SMOLLM3_SPECIAL_TOKENS]][]) {
    ids[name] = all.length;
    all.push(spec.text);
    types.push(spec.type);
  }
  const vocab: TinyVocab = {
    tokens: all,
    tokenTypes: Int32Array.from(types),
    merges,
    bosId: ids.beginOfText,
    eosId: ids.imEnd,
    padId: ids.pad,
  };
  smallCache.set(normalTokens, vocab);
  return vocab;
}
