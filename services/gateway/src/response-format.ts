import { invalidEnumValue, invalidType, invalidValue, missingParam } from "@smollm/chat";
import { ANY_OBJECT_SCHEMA, lowerJsonSchema, type GrammarSchema } from "./json-schema-lowering.ts";

/**
 * OpenAI's `response_format`, validated. For the JSON kinds, `grammarSchema`
 * is what decoding is constrained to (checked when the request is parsed, so
 * an unsupported schema is a 400 before any work).
 */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object"; grammarSchema: GrammarSchema }
  | { type: "json_schema"; name: string; schema: Readonly<Record<string, unknown>> | undefined; grammarSchema: GrammarSchema };

const TYPES = ["text", "json_object", "json_schema"] as const;
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * Validates `response_format` (`{type: "text"}`, `{type: "json_object"}` or
 * `{type: "json_schema", json_schema: {name, schema?, strict?, description?}}`);
 * absent or `null` is text.
 *
 * @throws RequestParamError for a malformed value or a schema the grammar cannot enforce.
 */
export function parseResponseFormat(value: unknown, param = "response_format"): ResponseFormat {
  if (value === undefined || value === null) return { type: "text" };
  if (typeof value !== "object" || Array.isArray(value)) throw invalidType(param, "an object", value);
  const v = value as Readonly<Record<string, unknown>>;
  const type = v["type"];
  if (type === undefined || type === null) throw missingParam(`${param}.type`);
  if (typeof type !== "string") throw invalidType(`${param}.type`, "a string", type);
  if (!(TYPES as readonly string[]).includes(type)) throw invalidEnumValue(`${param}.type`, type, TYPES);
  if (type === "text") return { type: "text" };
  if (type === "json_object") return { type: "json_object", grammarSchema: ANY_OBJECT_SCHEMA };

  const spec = v["json_schema"];
  if (spec === undefined || spec === null) throw missingParam(`${param}.json_schema`);
  if (typeof spec !== "object" || Array.isArray(spec)) throw invalidType(`${param}.json_schema`, "an object", spec);
  const s = spec as Readonly<Record<string, unknown>>;
  const name = s["name"];
  if (name === undefined || name === null) throw missingParam(`${param}.json_schema.name`);
  if (typeof name !== "string") throw invalidType(`${param}.json_schema.name`, "a string", name);
  if (!NAME.test(name)) {
    throw invalidValue(`${param}.json_schema.name`, "string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.");
  }
  const strict = s["strict"];
  if (strict !== undefined && strict !== null && typeof strict !== "boolean") throw invalidType(`${param}.json_schema.strict`, "a boolean", strict);
  const schema = s["schema"];
  if (schema === undefined || schema === null) {
    // OpenAI makes the schema optional; without one the answer is any JSON object.
    return { type: "json_schema", name, schema: undefined, grammarSchema: ANY_OBJECT_SCHEMA };
  }
  if (typeof schema !== "object" || Array.isArray(schema)) throw invalidType(`${param}.json_schema.schema`, "an object", schema);
  const record = schema as Readonly<Record<string, unknown>>;
  return { type: "json_schema", name, schema: record, grammarSchema: lowerJsonSchema(record, `${param}.json_schema.schema`) };
}
