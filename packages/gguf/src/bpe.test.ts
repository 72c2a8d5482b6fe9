import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BYTE_TO_UNICODE, byteLevelToBytes, preTokenize, textToByteLevel, unicodeCharToByte } from "./byte-level.ts";
import { trainByteLevelBpe } from "./bpe-trainer.ts";
import { ByteLevelBpe, TokenType } from "./bpe-tokenizer.ts";
import { TRAINING_CORPUS } from "./corpus.ts";
import { buildSmallVocab } from "./tiny-vocab.ts";
import { SMOLLM3_SPECIAL_TOKENS } from "./special-tokens.ts";

test("GPT-2 byte-to-unicode mapping is a bijection with the known anchors", () => {
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  assert.equal(BYTE_TO_UNICODE[0x20], "Ġ"); // space
  assert.equal(BYTE_TO_UNICODE[0x0a], "Ċ"); // newline
  assert.equal(BYTE_TO_UNICODE[0x41], "A");
  assert.equal(BYTE_TO_UNICODE[0x00], "Ā");
  assert.equal(BYTE_TO_UNICODE[0xad], "Ń");
  for (let b = 0; b < 256; b++) assert.equal(unicodeCharToByte(BYTE_TO_UNICODE[b]!), b);
  assert.equal(textToByteLevel(" é"), "ĠÃ©");
  assert.deepEqual(byteLevelToBytes("ĠÃ©"), new Uint8Array([0x20, 0xc3, 0xa9]));
  assert.equal(byteLevelToBytes("<|im_end|>\u4e00"), undefined);
});

test("llama-bpe pre-tokenizer splits like Llama-3", () => {
  assert.deepEqual(preTokenize("Hello world's 12345 ça!!\n\n  x"), ["Hello", " world", "'s", " ", "123", "45", " ça", "!!\n\n", " ", " x"]);
  assert.deepEqual(preTokenize("I'M OK"), ["I", "'M", " OK"]);
  assert.deepEqual(preTokenize("a  \n b"), ["a", "  \n", " b"]);
  // Every character is kept exactly once.
  fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => preTokenize(s).join("") === s));
});

test("BPE training is deterministic and reaches the target size", () => {
  const a = trainByteLevelBpe(TRAINING_CORPUS, { vocabSize: 600 });
  const b = trainByteLevelBpe(TRAINING_CORPUS, { vocabSize: 600 });
  assert.deepEqual(a, b);
  assert.equal(a.tokens.length, 600);
  assert.equal(new Set(a.tokens).size, a.tokens.length);
  assert.deepEqual(a.tokens.slice(0, 256), [...BYTE_TO_UNICODE]);
  // Every merge's parts were tokens before it.
  const known = new Set(a.tokens.slice(0, 256));
  for (const m of a.merges) {
    const [l, r] = m.split(" ") as [string, string];
    assert.ok(known.has(l) && known.has(r), m);
    known.add(l + r);
  }
  // Frequent words of all six languages became single tokens.
  const bpe = new ByteLevelBpe({ tokens: a.tokens, merges: a.merges });
  for (const w of [" the", " de", " la", " und", " que"]) assert.equal(bpe.encode(w).length, 1, w);
});

test("small vocabulary: ~1k normal tokens + SmolLM3 special tokens as Control", () => {
  const v = buildSmallVocab();
  const specials = Object.values(SMOLLM3_SPECIAL_TOKENS);
  assert.equal(v.tokens.length, 1024 + specials.length);
  assert.deepEqual(v.tokens.slice(1024), specials.map((s) => s.text));
  assert.deepEqual([...v.tokenTypes.slice(1024)], specials.map(() => TokenType.Control));
  assert.equal(v.tokens[v.bosId], "<|begin_of_text|>");
  assert.equal(v.tokens[v.eosId], "<|im_end|>");
  assert.equal(v.tokens[v.padId], "<|finetune_right_pad_id|>");
});

test("pure-TS encode/decode round-trips arbitrary text (incl. invalid surrogates → U+FFFD like UTF-8)", () => {
  const v = buildSmallVocab();
  const bpe = new ByteLevelBpe({ tokens: v.tokens, merges: v.merges, tokenTypes: v.tokenTypes });
  const encoder = new TextEncoder();
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
      const ids = bpe.encode(s);
      assert.deepEqual(bpe.decode(ids), encoder.encode(s));
    }),
    { numRuns: 300 },
  );
  const ids = bpe.encode("<|im_start|>user\nSalut<|im_end|>", { specialTokens: true });
  assert.equal(ids[0], v.tokens.indexOf("<|im_start|>"));
  assert.equal(ids.at(-1), v.eosId);
  assert.equal(bpe.decodeText(ids), "<|im_start|>user\nSalut<|im_end|>");
  // Without specialTokens, control-token text is ordinary text.
  assert.ok(!bpe.encode("<|im_end|>").includes(v.eosId));
});
