/**
 * On-demand cache of generated tiny models. Never downloads anything.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildTinyModelWriter,
  resolveTinyModelOptions,
  resolveTinyVocab,
  TINY_MODEL_GENERATOR_VERSION,
  type ResolvedTinyModelOptions,
  type TinyModelOptions,
} from "./tiny-model.ts";

/**
 * Default cache directory: `$SMOLLM_MODEL_CACHE_DIR` if set, else `<repo>/.cache/models/`
 * (git-ignored), resolved relative to this package so it does not depend on the cwd.
 */
export function defaultModelCacheDir(): string {
  const fromEnv = process.env["SMOLLM_MODEL_CACHE_DIR"];
  if (fromEnv) return resolve(fromEnv);
  return fileURLToPath(new URL("../../../.cache/models/", import.meta.url));
}

/** File name of the model for resolved options: vocab, generator version and a hash of all options. */
export function tinyModelFileName(options: ResolvedTinyModelOptions): string {
  const canonical = JSON.stringify(
    Object.keys(options)
      .sort()
      .map((k) => [k, options[k as keyof ResolvedTinyModelOptions]]),
  );
  const hash = createHash("sha256").update(`v${TINY_MODEL_GENERATOR_VERSION}:${canonical}`).digest("hex").slice(0, 16);
  return `tiny-smollm3-${options.vocab}-g${TINY_MODEL_GENERATOR_VERSION}-${hash}.gguf`;
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Returns the path of a tiny random-weight smollm3 GGUF for `options` (see TinyModelOptions for
 * defaults: small vocab, 4 layers, 64 hidden, 4 heads / 2 KV heads, FFN 128, context 131072),
 * generating it into `cacheDir` (default defaultModelCacheDir()) if it is not there yet.
 *
 * The file is written to a temporary name and renamed into place, so concurrent callers (even
 * in several processes) never see a partial file; an existing file is reused as is.
 */
export async function ensureTinyModel(options: TinyModelOptions = {}, cacheDir: string = defaultModelCacheDir()): Promise<string> {
  const resolved = resolveTinyModelOptions(options);
  const dir = resolve(cacheDir);
  const path = join(dir, tinyModelFileName(resolved));
  const pending = inFlight.get(path);
  if (pending) return pending;
  const job = (async () => {
    try {
      const s = await stat(path);
      if (s.isFile() && s.size > 0) return path;
    } catch {
      // missing: generate
    }
    await mkdir(dir, { recursive: true });
    const vocab = await resolveTinyVocab(resolved, dir);
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await buildTinyModelWriter(resolved, vocab).writeToFile(tmp);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return path;
  })();
  inFlight.set(path, job);
  try {
    return await job;
  } finally {
    inFlight.delete(path);
  }
}
