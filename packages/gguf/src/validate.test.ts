import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufValueType } from "./gguf-writer.ts";
import { GgufFormatError } from "./gguf-reader.ts";
import { buildTinyModelWriter, resolveTinyModelOptions } from "./tiny-model.ts";
import { buildSmallVocab } from "./tiny-vocab.ts";
import { GgufValidationError, validateSmolLM3Gguf } from "./validate.ts";

const options = resolveTinyModelOptions({ layers: 1 });

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "gguf-validate-test-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("a generated tiny model validates and is summarized", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "ok.gguf");
    await buildTinyModelWriter(options, buildSmallVocab()).writeToFile(path);
    const s = await validateSmolLM3Gguf(path);
    assert.deepEqual(
      { ...s, warnings: s.warnings.length },
      {
        path,
        architecture: "smollm3",
        contextLength: 131072,
        layers: 1,
        embeddingLength: 64,
        feedForwardLength: 128,
        headCount: 4,
        headCountKv: 2,
        vocabSize: buildSmallVocab().tokens.length,
        tokenizerModel: "gpt2",
        tokenizerPre: "llama-bpe",
        bosTokenId: buildSmallVocab().bosId,
        eosTokenId: buildSmallVocab().eosId,
        hasChatTemplate: true,
        warnings: 0,
      },
    );
  });
});

test("a GGUF missing smollm3.feed_forward_length (which aborts llama.cpp) is rejected with a clear message", async () => {
  await withTmp(async (dir) => {
    const w = buildTinyModelWriter(options, buildSmallVocab());
    w.delete("smollm3.feed_forward_length");
    w.delete("smollm3.attention.head_count");
    const path = join(dir, "no-ffn.gguf");
    await w.writeToFile(path);
    await assert.rejects(validateSmolLM3Gguf(path), (err: unknown) => {
      assert.ok(err instanceof GgufValidationError);
      assert.deepEqual(err.missingKeys, ["smollm3.feed_forward_length", "smollm3.attention.head_count"]);
      assert.equal(err.path, path);
      assert.match(err.message, /missing required metadata key\(s\): smollm3\.feed_forward_length, smollm3\.attention\.head_count/);
      return true;
    });
  });
});

test("wrong architecture, tokenizer and out-of-range ids are reported together; warnings for optional keys", async () => {
  await withTmp(async (dir) => {
    const w = buildTinyModelWriter(options, buildSmallVocab());
    w.setString("general.architecture", "llama");
    w.setString("tokenizer.ggml.model", "llama");
    w.setUint32("tokenizer.ggml.eos_token_id", 10_000_000);
    const path = join(dir, "bad.gguf");
    await w.writeToFile(path);
    await assert.rejects(validateSmolLM3Gguf(path), (err: unknown) => {
      assert.ok(err instanceof GgufValidationError);
      assert.equal(err.problems.length, 3, err.message);
      assert.match(err.message, /general\.architecture is "llama"/);
      assert.match(err.message, /tokenizer\.ggml\.model is "llama"/);
      assert.match(err.message, /eos_token_id = 10000000 is outside the vocabulary/);
      return true;
    });

    const w2 = buildTinyModelWriter(options, buildSmallVocab());
    w2.delete("tokenizer.ggml.pre");
    w2.delete("smollm3.attention.head_count_kv");
    w2.set("smollm3.attention.head_count", { type: GgufValueType.Uint32, value: 2 });
    const path2 = join(dir, "warn.gguf");
    await w2.writeToFile(path2);
    const s = await validateSmolLM3Gguf(path2);
    assert.equal(s.headCountKv, 2);
    assert.deepEqual(s.warnings, ["recommended key smollm3.attention.head_count_kv is missing", "recommended key tokenizer.ggml.pre is missing"]);
  });
});

test("non-GGUF and truncated files give GgufFormatError", async () => {
  await withTmp(async (dir) => {
    const junk = join(dir, "junk.gguf");
    await writeFile(junk, "definitely not a model");
    await assert.rejects(validateSmolLM3Gguf(junk), GgufFormatError);
    const truncated = join(dir, "trunc.gguf");
    const header = buildTinyModelWriter(options, buildSmallVocab()).buildHeader();
    await writeFile(truncated, header.subarray(0, 5000));
    await assert.rejects(validateSmolLM3Gguf(truncated), /unexpected end of file/);
  });
});
