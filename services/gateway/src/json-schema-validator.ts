/**
 * Checks a JSON value against a JSON schema (draft 2020-12 and the older
 * drafts' common forms): type, enum, const, the combinators, object, array,
 * string and number keywords, `format` for dates, times, e-mails and UUIDs,
 * and local `$ref`s (`#`, `#/$defs/…`, `#/definitions/…`). Keywords it does
 * not know are ignored, as the specification says.
 *
 * Written for this project (no validator package is installed): it checks
 * what a model produced, so it reports the first problem, with its path.
 */
export function validateJsonSchema(schema: unknown, value: unknown): string | undefined {
  return new Validator(schema).check(schema, value, "", 0);
}

type Schema = Readonly<Record<string, unknown>>;

/** Deeper than this is a reference cycle that never reaches a value. */
const MAX_DEPTH = 256;

class Validator {
  readonly #root: unknown;

  constructor(root: unknown) {
    this.#root = root;
  }

  check(schema: unknown, value: unknown, path: string, depth: number): string | undefined {
    if (depth > MAX_DEPTH) return `${at(path)}: the schema nests too deeply`;
    if (schema === true || schema === undefined) return undefined;
    if (schema === false) return `${at(path)}: no value is allowed here`;
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return undefined;
    const s = schema as Schema;

    const ref = s["$ref"];
    if (typeof ref === "string") {
      const target = this.#resolve(ref);
      if (target === undefined) return `${at(path)}: unresolvable $ref '${ref}'`;
      const error = this.check(target, value, path, depth + 1);
      if (error !== undefined) return error;
    }

    const type = s["type"];
    if (type !== undefined) {
      const types = Array.isArray(type) ? type : [type];
      if (!types.some((t) => hasType(value, t))) return `${at(path)}: expected ${types.join(" or ")}, got ${typeName(value)}`;
    }
    if (Array.isArray(s["enum"]) && !(s["enum"] as unknown[]).some((e) => deepEqual(e, value))) {
      return `${at(path)}: must be one of ${JSON.stringify(s["enum"])}`;
    }
    if ("const" in s && !deepEqual(s["const"], value)) return `${at(path)}: must be ${JSON.stringify(s["const"])}`;

    for (const error of [
      this.#combinators(s, value, path, depth),
      typeof value === "string" ? stringErrors(s, value, path) : undefined,
      typeof value === "number" ? numberErrors(s, value, path) : undefined,
      Array.isArray(value) ? this.#arrayErrors(s, value, path, depth) : undefined,
      isObject(value) ? this.#objectErrors(s, value, path, depth) : undefined,
    ]) {
      if (error !== undefined) return error;
    }
    return undefined;
  }

  #combinators(s: Schema, value: unknown, path: string, depth: number): string | undefined {
    const allOf = s["allOf"];
    if (Array.isArray(allOf)) {
      for (const sub of allOf) {
        const error = this.check(sub, value, path, depth + 1);
        if (error !== undefined) return error;
      }
    }
    const anyOf = s["anyOf"];
    if (Array.isArray(anyOf) && anyOf.length > 0) {
      const errors = anyOf.map((sub) => this.check(sub, value, path, depth + 1));
      if (errors.every((e) => e !== undefined)) return `${at(path)}: matches none of anyOf (${errors[0]})`;
    }
    const oneOf = s["oneOf"];
    if (Array.isArray(oneOf) && oneOf.length > 0) {
      const errors = oneOf.map((sub) => this.check(sub, value, path, depth + 1));
      const matches = errors.filter((e) => e === undefined).length;
      if (matches === 0) return `${at(path)}: matches none of oneOf (${errors[0]})`;
      if (matches > 1) return `${at(path)}: matches ${matches} schemas of oneOf, not exactly one`;
    }
    if ("not" in s && this.check(s["not"], value, path, depth + 1) === undefined) return `${at(path)}: must not match 'not'`;
    if ("if" in s) {
      const branch = this.check(s["if"], value, path, depth + 1) === undefined ? s["then"] : s["else"];
      const error = this.check(branch, value, path, depth + 1);
      if (error !== undefined) return error;
    }
    return undefined;
  }

  #arrayErrors(s: Schema, value: readonly unknown[], path: string, depth: number): string | undefined {
    const min = s["minItems"];
    if (typeof min === "number" && value.length < min) return `${at(path)}: needs at least ${min} items`;
    const max = s["maxItems"];
    if (typeof max === "number" && value.length > max) return `${at(path)}: allows at most ${max} items`;
    // Draft 2020-12 `prefixItems` + `items`; older drafts' array `items` + `additionalItems`.
    const prefix = Array.isArray(s["prefixItems"]) ? s["prefixItems"] : Array.isArray(s["items"]) ? s["items"] : [];
    const rest = Array.isArray(s["items"]) ? s["additionalItems"] : s["items"];
    for (let i = 0; i < value.length; i++) {
      const error = this.check(i < prefix.length ? prefix[i] : rest, value[i], `${path}/${i}`, depth + 1);
      if (error !== undefined) return error;
    }
    if (s["uniqueItems"] === true) {
      for (let i = 0; i < value.length; i++) {
        for (let j = i + 1; j < value.length; j++) {
          if (deepEqual(value[i], value[j])) return `${at(path)}: items ${i} and ${j} are equal`;
        }
      }
    }
    if ("contains" in s) {
      const matching = value.filter((v, i) => this.check(s["contains"], v, `${path}/${i}`, depth + 1) === undefined).length;
      const minContains = typeof s["minContains"] === "number" ? s["minContains"] : 1;
      if (matching < minContains) return `${at(path)}: must contain ${minContains} matching item(s)`;
      if (typeof s["maxContains"] === "number" && matching > s["maxContains"]) return `${at(path)}: contains too many matching items`;
    }
    return undefined;
  }

  #objectErrors(s: Schema, value: Readonly<Record<string, unknown>>, path: string, depth: number): string | undefined {
    const keys = Object.keys(value);
    const required = s["required"];
    if (Array.isArray(required)) {
      for (const key of required) if (typeof key === "string" && !Object.hasOwn(value, key)) return `${at(path)}: missing required property '${key}'`;
    }
    if (typeof s["minProperties"] === "number" && keys.length < s["minProperties"]) return `${at(path)}: needs at least ${s["minProperties"]} properties`;
    if (typeof s["maxProperties"] === "number" && keys.length > s["maxProperties"]) return `${at(path)}: allows at most ${s["maxProperties"]} properties`;
    const properties = isObject(s["properties"]) ? s["properties"] : {};
    const patterns = isObject(s["patternProperties"]) ? Object.entries(s["patternProperties"]) : [];
    for (const key of keys) {
      const child = `${path}/${escapePointer(key)}`;
      let matched = false;
      if (Object.hasOwn(properties, key)) {
        matched = true;
        const error = this.check(properties[key], value[key], child, depth + 1);
        if (error !== undefined) return error;
      }
      for (const [pattern, sub] of patterns) {
        if (!regex(pattern)?.test(key)) continue;
        matched = true;
        const error = this.check(sub, value[key], child, depth + 1);
        if (error !== undefined) return error;
      }
      if (!matched && "additionalProperties" in s) {
        if (s["additionalProperties"] === false) return `${at(path)}: property '${key}' is not allowed`;
        const error = this.check(s["additionalProperties"], value[key], child, depth + 1);
        if (error !== undefined) return error;
      }
      if ("propertyNames" in s) {
        const error = this.check(s["propertyNames"], key, child, depth + 1);
        if (error !== undefined) return `${at(child)}: bad property name (${error})`;
      }
    }
    const dependent = s["dependentRequired"];
    if (isObject(dependent)) {
      for (const [key, needs] of Object.entries(dependent)) {
        if (!Object.hasOwn(value, key) || !Array.isArray(needs)) continue;
        for (const need of needs) if (typeof need === "string" && !Object.hasOwn(value, need)) return `${at(path)}: '${key}' requires '${need}'`;
      }
    }
    return undefined;
  }

  /** A local reference: `#`, or a JSON pointer into the root schema (`#/$defs/x`). */
  #resolve(ref: string): unknown {
    if (ref === "#") return this.#root;
    if (!ref.startsWith("#/")) return undefined;
    let node: unknown = this.#root;
    for (const raw of ref.slice(2).split("/")) {
      const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
      if (typeof node !== "object" || node === null || !Object.hasOwn(node, key)) return undefined;
      node = (node as Record<string, unknown>)[key];
    }
    return node;
  }
}

function stringErrors(s: Schema, value: string, path: string): string | undefined {
  // Lengths count code points, as JSON Schema specifies (not UTF-16 units).
  const length = [...value].length;
  if (typeof s["minLength"] === "number" && length < s["minLength"]) return `${at(path)}: shorter than ${s["minLength"]} characters`;
  if (typeof s["maxLength"] === "number" && length > s["maxLength"]) return `${at(path)}: longer than ${s["maxLength"]} characters`;
  if (typeof s["pattern"] === "string") {
    const re = regex(s["pattern"]);
    if (re !== undefined && !re.test(value)) return `${at(path)}: does not match pattern ${s["pattern"]}`;
  }
  const format = s["format"];
  if (typeof format === "string") {
    const check = FORMATS[format];
    if (check !== undefined && !check(value)) return `${at(path)}: not a valid ${format}`;
  }
  return undefined;
}

function numberErrors(s: Schema, value: number, path: string): string | undefined {
  const min = s["minimum"];
  const max = s["maximum"];
  const exMin = s["exclusiveMinimum"];
  const exMax = s["exclusiveMaximum"];
  if (typeof min === "number" && (exMin === true ? value <= min : value < min)) return `${at(path)}: below the minimum ${min}`;
  if (typeof max === "number" && (exMax === true ? value >= max : value > max)) return `${at(path)}: above the maximum ${max}`;
  if (typeof exMin === "number" && value <= exMin) return `${at(path)}: must be greater than ${exMin}`;
  if (typeof exMax === "number" && value >= exMax) return `${at(path)}: must be less than ${exMax}`;
  const multipleOf = s["multipleOf"];
  if (typeof multipleOf === "number" && multipleOf > 0) {
    const q = value / multipleOf;
    if (Math.abs(q - Math.round(q)) > 1e-9) return `${at(path)}: not a multiple of ${multipleOf}`;
  }
  return undefined;
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const TIME = /^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$/i;
const FORMATS: Readonly<Record<string, (value: string) => boolean>> = {
  date: (v) => DATE.test(v),
  time: (v) => TIME.test(v),
  "date-time": (v) => {
    const t = v.search(/[Tt ]/);
    return t > 0 && DATE.test(v.slice(0, t)) && TIME.test(v.slice(t + 1));
  },
  email: (v) => /^[^\s@]+@[^\s@]+$/.test(v),
  uuid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
};

const regexCache = new Map<string, RegExp | undefined>();

/** A schema `pattern` as a Unicode RegExp; undefined (not checked) when JavaScript cannot compile it. */
function regex(pattern: string): RegExp | undefined {
  if (regexCache.has(pattern)) return regexCache.get(pattern);
  let re: RegExp | undefined;
  try {
    re = new RegExp(pattern, "u");
  } catch {
    re = undefined;
  }
  if (regexCache.size > 1000) regexCache.clear();
  regexCache.set(pattern, re);
  return re;
}

function hasType(value: unknown, type: unknown): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "null":
      return value === null;
    case "array":
      return Array.isArray(value);
    case "object":
      return isObject(value);
    default:
      return false;
  }
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function escapePointer(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** A JSON pointer for messages; the root is "/". */
function at(path: string): string {
  return path === "" ? "/" : path;
}
