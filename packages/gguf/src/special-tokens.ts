/**
 * SmolLM3's special tokens. SmolLM3 reuses the Llama-3 vocabulary and renames some of the
 * 256 reserved special slots (ids 128000–128255).
 *
 * Ids: 128000–128004 (`<|begin_of_text|>`, `<|end_of_text|>`, `<think>`, `</think>`,
 * `<|finetune_right_pad_id|>`) are confirmed by public SmolLM3 tokenizer configs; the ids of
 * `<|im_start|>` (128011), `<|im_end|>` (128012), `<tool_call>` (128015) and `</tool_call>`
 * (128016) are our best knowledge of SmolLM3's tokenizer_config.json and could not be verified
 * offline. Nothing in the cluster may hard-code these ids: read them from the GGUF.
 */
import { TokenType } from "./bpe-tokenizer.ts";

export interface SpecialTokenSpec {
  /** Literal token text. */
  text: string;
  /** Id in the real SmolLM3 (Llama-3) vocabulary; the "llama3" tiny model uses it as is. */
  smollm3Id: number;
  /** GGUF token type; all are Control, as SmolLM3's GGUF marks its added special tokens. */
  type: TokenType;
}

/** SmolLM3 special tokens, in the order the "small" tiny vocabulary appends them. */
export const SMOLLM3_SPECIAL_TOKENS = {
  /** `bos_token_id`. Not added automatically (`add_bos_token = false`). */
  beginOfText: { text: "<|begin_of_text|>", smollm3Id: 128000, type: TokenType.Control },
  /** End of a document; an end-of-generation token too. */
  endOfText: { text: "<|end_of_text|>", smollm3Id: 128001, type: TokenType.Control },
  thinkStart: { text: "<think>", smollm3Id: 128002, type: TokenType.Control },
  thinkEnd: { text: "</think>", smollm3Id: 128003, type: TokenType.Control },
  /** `padding_token_id`. */
  pad: { text: "<|finetune_right_pad_id|>", smollm3Id: 128004, type: TokenType.Control },
  imStart: { text: "<|im_start|>", smollm3Id: 128011, type: TokenType.Control },
  /** `eos_token_id`: SmolLM3's chat turns end with `<|im_end|>`. */
  imEnd: { text: "<|im_end|>", smollm3Id: 128012, type: TokenType.Control },
  toolCallStart: { text: "<tool_call>", smollm3Id: 128015, type: TokenType.Control },
  toolCallEnd: { text: "</tool_call>", smollm3Id: 128016, type: TokenType.Control },
} as const satisfies Record<string, SpecialTokenSpec>;

export type SmolLM3SpecialTokenName = keyof typeof SMOLLM3_SPECIAL_TOKENS;
