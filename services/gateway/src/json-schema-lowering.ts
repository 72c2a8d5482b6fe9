import { invalidValue, type RequestParamError } from "@smollm/chat";

/** A schema in the subset node-llama-cpp turns into a grammar (its `GbnfJsonSchema`), as plain JSON. */
export type GrammarSchema = { readonly [key: string]: unknown };

/**
 * Any JSON value, in the grammar subset: node-llama-cpp has no "anything"
 * schema, so it is spelled out. An array without `items` takes any values.
 */
export const ANY_JSON_SCHEMA: GrammarSchema = {
  oneOf: [{ type: ["string", "number", "boolean", "null"] }, { type: "object", additionalProperties: true }, { type: "array" }],
};

/** Any JSON object: what `response_format: {type: "json_object"}` asks for. */
export const ANY_OBJECT_SCHEMA: GrammarSchema = { type: "object", additionalProperties: true };

/** Keywords that describe without constraining: dropped. */
const ANNOTATIONS = new Set([
  "title",
  "description",
  "$schema",
  "$id",
  "$comment",
  "examples",
  "default",
  "deprecated",
  "readOnly",
  "writeOnly",
  "$defs",
  "definitions",
]);

/** Keywords of each type that the grammar enforces. */
const TYPE_KEYWORDS: Readonly<Record<string, ReadonlySet<string>>> = {
  string: new Set(["minLength", "maxLength", "format"]),
  number: new Set(),
  integer: new Set(),
  boolean: new Set(),
  null: new Set(),
  object: new Set(["properties", "required", "additionalProperties", "minProperties", "maxProperties"]),
  array: new Set(["items", "prefixItems", "minItems", "maxItems", "uniqueItems"]),
};
/** Keywords that apply to one type only: ignored on values of other types, as JSON Schema says. */
const OWNER_TYPE = new Map<string, string>(
  Object.entries(TYPE_KEYWORDS).flatMap(([type, keywords]) => [...keywords].map((k) => [k, type] as [string, string])),
);
const GENERAL = new Set(["type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"]);
const STRING_FORMATS = new Set(["date-time", "date", "time"]);
const MAX_DEPTH = 64;

const SUPPORTED =
  "type, enum, const, anyOf/oneOf, allOf with one schema, $ref to $defs/definitions, properties, required, " +
  "additionalProperties, min/maxProperties, items, prefixItems, min/maxItems, min/maxLength and format date-time/date/time";

/**
 * Turns a client's JSON schema into the subset node-llama-cpp's JSON-schema
 * grammar enforces, so that constrained decoding guarantees a valid value.
 * A keyword the grammar cannot enforce (`pattern`, `minimum`, `not`…) is a
 * clear 400 naming it, never silently dropped: a client relying on it must
 * know it does not hold.
 *
 * The subset's own rules are bridged: it writes every listed property (valid
 * whether or not they are `required`), its `additionalProperties` defaults to
 * false (so "any object" is made explicit), `anyOf` becomes `oneOf` (one
 * generated branch satisfies both) and `definitions` become `$defs`.
 *
 * @param param the schema's path in the request, for error `param`s.
 * @throws RequestParamError (an InvalidRequestError) naming the unsupported keyword's path.
 */
export function lowerJsonSchema(schema: unknown, param: string): GrammarSchema {
  const root = asSchema(schema, param);
  const defs: Record<string, GrammarSchema> = {};
  const rawDefs = { ...objectOrEmpty(root, "definitions", param), ...objectOrEmpty(root, "$defs", param) };
  const lowering = new Lowering(Object.keys(rawDefs), param);
  for (const [name, def] of Object.entries(rawDefs)) {
    defs[name] = lowering.lower(def, `${param}.$defs.${name}`, 1);
  }
  const lowered = lowering.lower(root, param, 0);
  if (Object.keys(defs).length === 0) return lowered;
  // node-llama-cpp resolves `$ref`s through the `$defs` of the schemas around them; the root holds them all.
  if ("oneOf" in lowered || "$ref" in lowered || lowered["type"] === "object" || lowered["type"] === "array") {
    return { ...lowered, $defs: defs };
  }
  return { oneOf: [lowered], $defs: defs };
}

class Lowering {
  readonly #defNames: ReadonlySet<string>;
  readonly #rootParam: string;

  constructor(defNames: readonly string[], rootParam: string) {
    this.#defNames = new Set(defNames);
    this.#rootParam = rootParam;
  }

  lower(node: unknown, path: string, depth: number): GrammarSchema {
    if (depth > MAX_DEPTH) throw invalidValue(path, `the schema nests deeper than ${MAX_DEPTH} levels.`);
    if (node === true) return ANY_JSON_SCHEMA;
    const s = asSchema(node, path);
    for (const key of Object.keys(s)) {
      if (!ANNOTATIONS.has(key) && !GENERAL.has(key) && !OWNER_TYPE.has(key)) throw unsupported(`${path}.${key}`, key);
    }
    if (depth > 0 && ("$defs" in s || "definitions" in s)) {
      throw invalidValue(`${path}.$defs`, "'$defs' are only supported at the root of the schema.");
    }

    const ref = s["$ref"];
    if (ref !== undefined) {
      only(s, path, "$ref");
      if (typeof ref !== "string") throw invalidValue(`${path}.$ref`, "'$ref' must be a string.");
      const m = /^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(ref);
      const name = m === null ? undefined : decodeURIComponent(m[1] ?? "").replaceAll("~1", "/").replaceAll("~0", "~");
      if (name === undefined || !this.#defNames.has(name)) {
        throw invalidValue(
          `${path}.$ref`,
          `'${ref}' is not supported: only references to the root's '$defs' (or 'definitions') are (${this.#rootParam}).`,
        );
      }
      return { $ref: `#/$defs/${name}` };
    }
    const allOf = s["allOf"];
    if (allOf !== undefined) {
      only(s, path, "allOf");
      if (!Array.isArray(allOf) || allOf.length !== 1) {
        throw invalidValue(`${path}.allOf`, "'allOf' is only supported with exactly one schema (a grammar cannot intersect schemas).");
      }
      return this.lower(allOf[0], `${path}.allOf[0]`, depth + 1);
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      const branches = s[key];
      if (branches === undefined) continue;
      only(s, path, key);
      if (!Array.isArray(branches) || branches.length === 0) throw invalidValue(`${path}.${key}`, `'${key}' must be a non-empty array of schemas.`);
      return { oneOf: branches.map((b, i) => this.lower(b, `${path}.${key}[${i}]`, depth + 1)) };
    }
    if ("enum" in s) {
      const values = s["enum"];
      if (!Array.isArray(values) || values.length === 0) throw invalidValue(`${path}.enum`, "'enum' must be a non-empty array.");
      values.forEach((v, i) => primitive(v, `${path}.enum[${i}]`));
      return { enum: values };
    }
    if ("const" in s) return { const: primitive(s["const"], `${path}.const`) };

    let types: string[];
    const type = s["type"];
    if (type === undefined) {
      // No type: the keywords say which (JSON Schema would accept any other type too; one is enough to generate).
      if ("properties" in s || "additionalProperties" in s || "required" in s) types = ["object"];
      else if ("items" in s || "prefixItems" in s) types = ["array"];
      else return ANY_JSON_SCHEMA;
    } else {
      const list = Array.isArray(type) ? type : [type];
      if (list.length === 0) throw invalidValue(`${path}.type`, "'type' must not be an empty array.");
      types = list.map((t, i) => {
        if (typeof t !== "string" || !(t in TYPE_KEYWORDS)) {
          throw invalidValue(`${path}.type${Array.isArray(type) ? `[${i}]` : ""}`, `'${String(t)}' is not a JSON Schema type.`);
        }
        return t;
      });
    }
    const branches = [...new Set(types)].map((t) => this.#lowerType(s, t, path, depth));
    return branches.length === 1 ? (branches[0] as GrammarSchema) : { oneOf: branches };
  }

  #lowerType(s: Readonly<Record<string, unknown>>, type: string, path: string, depth: number): GrammarSchema {
    switch (type) {
      case "string": {
        const out: Record<string, unknown> = { type };
        const format = s["format"];
        if (format !== undefined) {
          if (typeof format !== "string" || !STRING_FORMATS.has(format)) {
            throw invalidValue(`${path}.format`, `format '${String(format)}' is not supported; supported formats are date-time, date and time.`);
          }
          if ("minLength" in s || "maxLength" in s) {
            throw invalidValue(`${path}.format`, "'format' cannot be combined with 'minLength' or 'maxLength'.");
          }
          out["format"] = format;
        }
        for (const key of ["minLength", "maxLength"]) if (key in s) out[key] = count(s[key], `${path}.${key}`);
        return out;
      }
      case "object": {
        const out: Record<string, unknown> = { type };
        const properties = s["properties"];
        const lowered: Record<string, GrammarSchema> = {};
        if (properties !== undefined) {
          if (typeof properties !== "object" || properties === null || Array.isArray(properties)) {
            throw invalidValue(`${path}.properties`, "'properties' must be an object.");
          }
          for (const [key, sub] of Object.entries(properties)) lowered[key] = this.lower(sub, `${path}.properties.${key}`, depth + 1);
          out["properties"] = lowered;
        }
        const required = s["required"];
        if (required !== undefined) {
          if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
            throw invalidValue(`${path}.required`, "'required' must be an array of strings.");
          }
          // Listed properties are always written; a required one that is not listed never would be.
          for (const key of required as string[]) {
            if (!Object.hasOwn(lowered, key)) throw invalidValue(`${path}.required`, `required property '${key}' is not in 'properties'.`);
          }
        }
        const additional = s["additionalProperties"];
        if (additional === undefined || additional === true) {
          // JSON Schema's default allows more properties; with none listed, that is "any object".
          out["additionalProperties"] = properties === undefined;
        } else if (additional === false) {
          out["additionalProperties"] = false;
        } else {
          out["additionalProperties"] = this.lower(additional, `${path}.additionalProperties`, depth + 1);
        }
        for (const key of ["minProperties", "maxProperties"]) if (key in s) out[key] = count(s[key], `${path}.${key}`);
        return out;
      }
      case "array": {
        const out: Record<string, unknown> = { type };
        if (s["uniqueItems"] === true) throw unsupported(`${path}.uniqueItems`, "uniqueItems");
        const items = s["items"];
        let prefix = s["prefixItems"];
        if (Array.isArray(items)) {
          // Draft 4–7 tuple form.
          if (prefix !== undefined) throw invalidValue(`${path}.items`, "array 'items' cannot be combined with 'prefixItems'.");
          prefix = items;
        } else if (items !== undefined && items !== true) {
          if (items === false) {
            out["maxItems"] = Array.isArray(prefix) ? prefix.length : 0;
          } else {
            out["items"] = this.lower(items, `${path}.items`, depth + 1);
          }
        }
        if (prefix !== undefined) {
          if (!Array.isArray(prefix)) throw invalidValue(`${path}.prefixItems`, "'prefixItems' must be an array of schemas.");
          out["prefixItems"] = prefix.map((p, i) => this.lower(p, `${path}.prefixItems[${i}]`, depth + 1));
        }
        for (const key of ["minItems", "maxItems"]) if (key in s) out[key] = count(s[key], `${path}.${key}`);
        return out;
      }
      default:
        return { type };
    }
  }
}

function asSchema(node: unknown, path: string): Readonly<Record<string, unknown>> {
  if (node === false) throw invalidValue(path, "the schema 'false' allows no value at all.");
  if (typeof node !== "object" || node === null || Array.isArray(node)) throw invalidValue(path, "a JSON schema must be an object.");
  return node as Readonly<Record<string, unknown>>;
}

/** `combinator` must stand alone (annotations aside): the grammar cannot intersect it with sibling keywords. */
function only(s: Readonly<Record<string, unknown>>, path: string, combinator: string): void {
  for (const key of Object.keys(s)) {
    if (key !== combinator && !ANNOTATIONS.has(key)) {
      throw invalidValue(`${path}.${key}`, `'${key}' cannot be combined with '${combinator}' in the same schema; move it into the branches.`);
    }
  }
}

function primitive(value: unknown, path: string): string | number | boolean | null {
  if (value === null || typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) {
    return value;
  }
  throw invalidValue(path, "only strings, numbers, booleans and null are supported as 'enum' and 'const' values.");
}

function count(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw invalidValue(path, "must be a non-negative integer.");
  return value;
}

function objectOrEmpty(s: Readonly<Record<string, unknown>>, key: string, path: string): Record<string, unknown> {
  const value = s[key];
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidValue(`${path}.${key}`, `'${key}' must be an object.`);
  return value as Record<string, unknown>;
}

function unsupported(path: string, keyword: string): RequestParamError {
  return invalidValue(
    path,
    `'${keyword}' is not supported in schemas for constrained output: generation is constrained by a grammar, which cannot enforce it. Supported keywords: ${SUPPORTED}.`,
    "unsupported_schema",
  );
}
