import type { Llama, LlamaGrammar } from "node-llama-cpp";
import { ClusterError, InvalidRequestError } from "@smollm/common";

/** What a generation is constrained to (the GenerateRequest fields). */
export interface ConstraintSpec {
  /** GBNF; exclusive with jsonSchema. */
  grammar?: string;
  /** JSON text of a schema in node-llama-cpp's GBNF-JSON subset (the gateway lowers clients' schemas to it). */
  jsonSchema?: string;
  /** Literal text before / after each JSON value. */
  jsonPrefix?: string;
  jsonSuffix?: string;
  /** 0 or 1: exactly one framed value; n > 1: one to n, separated by "\n". */
  jsonMaxValues?: number;
}

/**
 * node-llama-cpp's JSON-schema grammar ends its root with `"\n\n\n\n" [\n]*`:
 * its chat layer stops on four newlines. Here generation stops at the
 * end-of-generation token the grammar allows once the value is complete, so
 * that tail is cut and the value becomes a rule of its own.
 */
const JSON_ROOT = /^root ::= (.*) "\\n\\n\\n\\n" \[\\n\]\*$/;

/**
 * Its numbers take exponents of up to 16 digits, which parse to Infinity:
 * integers lose the exponent (JSON Schema integers are plain), decimals keep
 * two digits of it.
 */
const EXPONENT = ' ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
const NUMBER_RULE_PATCHES: readonly (readonly [prefix: string, replacement: string])[] = [
  ["integer-number-rule ::= ", ""],
  ["fractional-number-rule ::= ", ' ([eE] [-+]? [0-9]{1,2})?'],
];

/** Most constraints kept compiled; a client reusing a schema skips the JSON-to-GBNF step. */
const DEFAULT_CACHE_ENTRIES = 64;

/**
 * The GBNF of a JSON-schema constraint: the schema's value rules (from
 * node-llama-cpp, patched as above) under a root that frames each value with
 * the prefix and suffix and repeats it up to `maxValues` times.
 *
 * @param valueGrammar the GBNF node-llama-cpp generated for the schema.
 * @throws Error when that GBNF is not shaped as expected (another node-llama-cpp version).
 */
export function frameJsonGrammar(valueGrammar: string, prefix: string, suffix: string, maxValues: number): string {
  const lines = valueGrammar.split("\n");
  const m = JSON_ROOT.exec(lines[0] ?? "");
  if (m === null) throw new Error(`unexpected JSON-schema grammar root: ${(lines[0] ?? "").slice(0, 120)}`);
  lines[0] = `smollm-value ::= ${m[1]}`;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    for (const [start, replacement] of NUMBER_RULE_PATCHES) {
      if (line.startsWith(start) && line.endsWith(EXPONENT)) lines[i] = line.slice(0, -EXPONENT.length) + replacement;
    }
  }
  let root: string;
  if (prefix === "" && suffix === "" && maxValues <= 1) {
    root = "root ::= smollm-value";
  } else {
    const item = ["smollm-item ::=", prefix === "" ? "" : gbnfLiteral(prefix), "smollm-value", suffix === "" ? "" : gbnfLiteral(suffix)]
      .filter((p) => p !== "")
      .join(" ");
    lines.push(item);
    root = maxValues <= 1 ? "root ::= smollm-item" : `root ::= smollm-item ("\\n" smollm-item){0,${maxValues - 1}}`;
  }
  return [root, ...lines].join("\n");
}

/** A GBNF string literal. */
export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * Compiles constraints into node-llama-cpp grammars, keeping the most recent
 * ones: a grammar is immutable and shared, each generation gets its own
 * evaluation state.
 */
export class GrammarCache {
  readonly #llama: Llama;
  readonly #max: number;
  readonly #grammars = new Map<string, Promise<LlamaGrammar>>();

  constructor(llama: Llama, maxEntries = DEFAULT_CACHE_ENTRIES) {
    this.#llama = llama;
    this.#max = maxEntries;
  }

  /**
   * The grammar for `spec`, or undefined when it constrains nothing.
   * @throws InvalidRequestError for a malformed schema or grammar.
   */
  async get(spec: ConstraintSpec): Promise<LlamaGrammar | undefined> {
    const grammar = spec.grammar ?? "";
    const jsonSchema = spec.jsonSchema ?? "";
    const prefix = spec.jsonPrefix ?? "";
    const suffix = spec.jsonSuffix ?? "";
    const maxValues = spec.jsonMaxValues ?? 0;
    if (grammar !== "" && jsonSchema !== "") {
      throw new InvalidRequestError("grammar and json_schema are exclusive", { param: "grammar" });
    }
    if (jsonSchema === "" && (prefix !== "" || suffix !== "" || maxValues > 1)) {
      throw new InvalidRequestError("json_prefix, json_suffix and json_max_values need json_schema", { param: "json_schema" });
    }
    if (grammar === "" && jsonSchema === "") return undefined;
    const key = JSON.stringify([grammar, jsonSchema, prefix, suffix, maxValues]);
    let entry = this.#grammars.get(key);
    if (entry !== undefined) {
      // Most recently used last: Map keeps insertion order.
      this.#grammars.delete(key);
    } else {
      entry = grammar !== "" ? this.#compile(grammar, "grammar") : this.#compileJson(jsonSchema, prefix, suffix, maxValues);
      // A failed compilation is not kept: the next request gets its own error.
      entry.catch(() => this.#grammars.delete(key));
    }
    this.#grammars.set(key, entry);
    while (this.#grammars.size > this.#max) {
      const oldest = this.#grammars.keys().next().value as string;
      this.#grammars.delete(oldest);
    }
    return entry;
  }

  async #compile(gbnf: string, param: string): Promise<LlamaGrammar> {
    try {
      return await this.#llama.createGrammar({ grammar: gbnf });
    } catch (error: unknown) {
      throw new InvalidRequestError(`the ${param} could not be parsed as GBNF`, { param, cause: error });
    }
  }

  async #compileJson(jsonSchema: string, prefix: string, suffix: string, maxValues: number): Promise<LlamaGrammar> {
    let schema: unknown;
    try {
      schema = JSON.parse(jsonSchema);
    } catch (error: unknown) {
      throw new InvalidRequestError("json_schema is not valid JSON", { param: "json_schema", cause: error });
    }
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
      throw new InvalidRequestError("json_schema must be a JSON object", { param: "json_schema" });
    }
    let valueGrammar: string;
    try {
      // The schema is runtime data (checked by node-llama-cpp), not a literal its generic types can follow.
      valueGrammar = (await this.#llama.createGrammarForJsonSchema(schema as never)).grammar;
    } catch (error: unknown) {
      throw new InvalidRequestError("json_schema cannot be turned into a grammar", { param: "json_schema", cause: error });
    }
    let framed: string;
    try {
      framed = frameJsonGrammar(valueGrammar, prefix, suffix, maxValues);
    } catch (error: unknown) {
      throw new ClusterError("internal", "internal error", { cause: error });
    }
    return this.#compile(framed, "json_schema");
  }
}
