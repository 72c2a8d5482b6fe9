/**
 * The real 128,256-token Llama-3 BPE vocabulary that SmolLM3 uses, taken from the llama.cpp
 * source node-llama-cpp ships (`llama/gitRelease.bundle` → `models/ggml-vocab-llama-bpe.gguf`),
 * with SmolLM3's special tokens written into their reserved slots. Nothing is downloaded.
 *
 * The extraction (git clone of the bundle + GGUF parse, ~3 s) is cached as JSON in the model
 * cache directory; the file name carries the bundle's commit so an upgrade re-extracts.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rename, rm, writeFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TokenType } from "./bpe-tokenizer.ts";
import { readGgufHeader } from "./gguf-reader.ts";
import { SMOLLM3_SPECIAL_TOKENS } from "./special-tokens.ts";
import type { TinyVocab } from "./tiny-vocab.ts";

const run = promisify(execFile);

/** Size of the Llama-3 / SmolLM3 vocabulary. */
export const LLAMA3_VOCAB_SIZE = 128256;

/** Path of the git bundle of llama.cpp's source that node-llama-cpp ships. */
export function llamaCppBundlePath(): string {
  // node-llama-cpp's "exports" hides package.json: resolve its entry and walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
  for (;;) {
    const candidate = join(dir, "llama", "gitRelease.bundle");
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("node-llama-cpp's llama/gitRelease.bundle not found");
    dir = parent;
  }
}

async function bundleCommit(bundle: string): Promise<string> {
  const { stdout } = await run("git", ["bundle", "list-heads", bundle]);
  const commit = stdout.trim().split(/\s+/)[0];
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) throw new Error(`cannot read the commit of ${bundle}: ${stdout}`);
  return commit;
}

interface CachedVocab {
  source: string;
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
}

/** Extracts `models/ggml-vocab-llama-bpe.gguf` from the bundle into `destFile`. */
async function extractVocabGguf(bundle: string, destFile: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "smollm-llamacpp-"));
  try {
    // --no-checkout: only the object store is needed to `git show` one file (2 s instead of 3+).
    await run("git", ["clone", "-q", "--no-checkout", bundle, join(dir, "src")]);
    const { stdout } = await run("git", ["-C", join(dir, "src"), "show", "HEAD:models/ggml-vocab-llama-bpe.gguf"], {
      encoding: "buffer",
      maxBuffer: 64 << 20,
    });
    await writeFile(destFile, stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads tokens / token types / merges of the Llama-3 vocabulary (cached under `cacheDir`). */
export async function loadLlama3BaseVocab(cacheDir: string): Promise<CachedVocab> {
  const bundle = llamaCppBundlePath();
  const commit = await bundleCommit(bundle);
  const cacheFile = join(cacheDir, `llama3-vocab-${commit.slice(0, 12)}.json`);
  try {
    return JSON.parse(await readFile(cacheFile, "utf8")) as CachedVocab;
  } catch {
    // not cached yet (or unreadable): extract below
  }
  await mkdir(cacheDir, { recursive: true });
  const tmpGguf = join(cacheDir, `.llama-bpe-${process.pid}-${Date.now()}.gguf`);
  try {
    await extractVocabGguf(bundle, tmpGguf);
    const header = await readGgufHeader(tmpGguf);
    const tokens = header.metadata.get("tokenizer.ggml.tokens");
    const types = header.metadata.get("tokenizer.ggml.token_type");
    const merges = header.metadata.get("tokenizer.ggml.merges");
    if (!Array.isArray(tokens) || !Array.isArray(types) || !Array.isArray(merges)) {
      throw new Error("ggml-vocab-llama-bpe.gguf lacks tokens/token_type/merges");
    }
    if (tokens.length !== LLAMA3_VOCAB_SIZE) throw new Error(`expected ${LLAMA3_VOCAB_SIZE} tokens, got ${tokens.length}`);
    const vocab: CachedVocab = {
      source: `llama.cpp ${commit} models/ggml-vocab-llama-bpe.gguf`,
      tokens: tokens as string[],
      tokenTypes: types as number[],
      merges: merges as string[],
    };
    const tmpJson = `${cacheFile}.${process.pid}.tmp`;
    await writeFile(tmpJson, JSON.stringify(vocab));
    await rename(tmpJson, cacheFile);
    return vocab;
  } finally {
    await rm(tmpGguf, { force: true });
  }
}

/**
 * The SmolLM3 vocabulary: Llama-3's, with SMOLLM3_SPECIAL_TOKENS written at their SmolLM3 ids
 * (replacing `<|reserved_special_token_N|>` entries) as Control tokens. bos = `<|begin_of_text|>`,
 * eos = `<|im_end|>`, pad = `<|finetune_right_pad_id|>`.
 */
export async function loadSmolLM3Vocab(cacheDir: string): Promise<TinyVocab> {
  const base = await loadLlama3BaseVocab(cacheDir);
  const tokens = [...base.tokens];
  const tokenTypes = Int32Array.from(base.tokenTypes);
  for (const spec of Object.values(SMOLLM3_SPECIAL_TOKENS)) {
    tokens[spec.smollm3Id] = spec.text;
    tokenTypes[spec.smollm3Id] = TokenType.Control;
  }
  return {
    tokens,
    tokenTypes,
    merges: base.merges,
    bosId: SMOLLM3_SPECIAL_TOKENS.beginOfText.smollm3Id,
    eosId: SMOLLM3_SPECIAL_TOKENS.imEnd.smollm3Id,
    padId: SMOLLM3_SPECIAL_TOKENS.pad.smollm3Id,
  };
}
