/**
 * Raw bytes of every token of a gpt2-type GGUF, for streaming UTF-8 correctly: a multi-byte
 * character is often split across tokens, and a random model emits lone bytes ≥ 0x80, so a
 * worker must decode bytes incrementally rather than per-token strings.
 */
import { ByteLevelBpe, TokenType } from "./bpe-tokenizer.ts";
import { readGgufHeader } from "./gguf-reader.ts";

/**
 * Returns, for each token id of the GGUF at `ggufPath` (any `tokenizer.ggml.model = "gpt2"`
 * file, real SmolLM3 included), the token's raw bytes: the GPT-2 byte-level mapping reversed for
 * normal tokens; the token text as UTF-8 for Control / UserDefined tokens (e.g. `<|im_end|>`).
 * Only the header is read (merges are skipped).
 */
export async function readTokenBytesTable(ggufPath: string): Promise<Uint8Array[]> {
  const tokenizer = await loadByteLevelBpe(ggufPath);
  const table: Uint8Array[] = new Array<Uint8Array>(tokenizer.size);
  for (let id = 0; id < tokenizer.size; id++) table[id] = tokenizer.tokenBytes(id);
  return table;
}

/**
 * Builds the pure-TS tokenizer from a gpt2-type GGUF (tokens, token types, merges; merges are
 * ignored only when `withMerges` is false, which is enough for decoding).
 */
export async function loadByteLevelBpe(ggufPath: string, options: { withMerges?: boolean } = {}): Promise<ByteLevelBpe> {
  const withMerges = options.withMerges ?? false;
  const header = await readGgufHeader(ggufPath, withMerges ? {} : { skipKeys: ["tokenizer.ggml.merges"] });
  const model = header.metadata.get("tokenizer.ggml.model");
  if (model !== "gpt2") throw new Error(`${ggufPath}: tokenizer.ggml.model is ${JSON.stringify(model)}, only "gpt2" (byte-level BPE) is supported`);
  const tokens = header.metadata.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens)) throw new Error(`${ggufPath}: tokenizer.ggml.tokens missing`);
  const types = header.metadata.get("tokenizer.ggml.token_type");
  const merges = header.metadata.get("tokenizer.ggml.merges");
  const pre = header.metadata.get("tokenizer.ggml.pre");
  return new ByteLevelBpe({
    tokens: tokens as string[],
    merges: Array.isArray(merges) ? (merges as string[]) : [],
    tokenTypes: Array.isArray(types) ? (types as number[]) : new Array<number>(tokens.length).fill(TokenType.Normal),
    // llama.cpp sets ignore_merges for the Llama-3 family of pre-tokenizers.
    ignoreMerges: typeof pre === "string" && ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"].includes(pre),
  });
}
