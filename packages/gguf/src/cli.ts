/**
 * Command line for tiny models.
 *
 *   node --import tsx packages/gguf/src/cli.ts [--vocab small|llama3] [--out path] [--cache-dir dir]
 *       [--layers N] [--embedding N] [--heads N] [--kv-heads N] [--ffn N] [--context N]
 *       [--rope-base X] [--rms-eps X] [--seed N] [--weight-type f32|f16] [--small-vocab-tokens N]
 *   → prints the path of the cached (or newly generated) model; with --out, copies it there.
 *
 *   node --import tsx packages/gguf/src/cli.ts --validate <path>
 *   → prints the summary as JSON, or the validation error (exit code 1).
 */
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureTinyModel } from "./model-cache.ts";
import type { TinyModelOptions } from "./tiny-model.ts";
import { validateSmolLM3Gguf } from "./validate.ts";

const USAGE = `usage: cli.ts [--vocab small|llama3] [--out path] [--cache-dir dir] [--layers N] [--embedding N] [--heads N]
              [--kv-heads N] [--ffn N] [--context N] [--rope-base X] [--rms-eps X] [--seed N]
              [--weight-type f32|f16] [--small-vocab-tokens N]
       cli.ts --validate <path>`;

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      vocab: { type: "string" },
      out: { type: "string" },
      "cache-dir": { type: "string" },
      layers: { type: "string" },
      embedding: { type: "string" },
      heads: { type: "string" },
      "kv-heads": { type: "string" },
      ffn: { type: "string" },
      context: { type: "string" },
      "rope-base": { type: "string" },
      "rms-eps": { type: "string" },
      seed: { type: "string" },
      "weight-type": { type: "string" },
      "small-vocab-tokens": { type: "string" },
      validate: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.validate !== undefined) {
    try {
      console.log(JSON.stringify(await validateSmolLM3Gguf(resolve(values.validate)), null, 2));
      return 0;
    } catch (err) {
      console.error(err instanceof Error ? err.message : String(err));
      return 1;
    }
  }
  const options: TinyModelOptions = {};
  const set = <K extends keyof TinyModelOptions>(k: K, v: TinyModelOptions[K] | undefined): void => {
    if (v !== undefined) options[k] = v;
  };
  if (values.vocab !== undefined && values.vocab !== "small" && values.vocab !== "llama3") throw new Error(`--vocab must be small or llama3`);
  set("vocab", values.vocab as "small" | "llama3" | undefined);
  set("layers", int("layers", values.layers));
  set("embedding", int("embedding", values.embedding));
  set("heads", int("heads", values.heads));
  set("kvHeads", int("kv-heads", values["kv-heads"]));
  set("feedForward", int("ffn", values.ffn));
  set("contextLength", int("context", values.context));
  set("ropeFreqBase", num("rope-base", values["rope-base"]));
  set("rmsEps", num("rms-eps", values["rms-eps"]));
  set("smallVocabTokens", int("small-vocab-tokens", values["small-vocab-tokens"]));
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer`);
    options.seed = seed;
  }
  const wt = values["weight-type"];
  if (wt !== undefined && wt !== "f32" && wt !== "f16") throw new Error(`--weight-type must be f32 or f16`);
  set("weightType", wt as "f32" | "f16" | undefined);

  const cached = values["cache-dir"] !== undefined ? await ensureTinyModel(options, resolve(values["cache-dir"])) : await ensureTinyModel(options);
  if (values.out !== undefined) {
    const out = resolve(values.out);
    await mkdir(dirname(out), { recursive: true });
    await copyFile(cached, out);
    console.log(out);
  } else {
    console.log(cached);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    console.error(USAGE);
    process.exitCode = 2;
  },
);
