import { invalidEnumValue, invalidType, invalidValue, missingParam } from "./param-errors.ts";
import type { ToolChoice, ToolDefinition } from "./tools.ts";

/** OpenAI's rule for function names. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const TOOL_CHOICES = ["none", "auto", "required"] as const;

type Json = Readonly<Record<string, unknown>>;

/**
 * Validates an OpenAI `tools` array (untrusted JSON): every item is
 * `{type: "function", function: {name, description?, parameters?, strict?}}`,
 * names follow OpenAI's pattern and are unique. Unknown fields are ignored;
 * `null` or absent gives no tools.
 *
 * @throws RequestParamError naming the faulty field, e.g. `tools[1].function.name`.
 */
export function parseTools(value: unknown, param = "tools"): ToolDefinition[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidType(param, "an array", value);
  const tools: ToolDefinition[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const path = `${param}[${i}]`;
    const item = object(value[i], path);
    const type = item["type"];
    if (type === undefined || type === null) throw missingParam(`${path}.type`);
    if (typeof type !== "string") throw invalidType(`${path}.type`, "a string", type);
    if (type !== "function") throw invalidEnumValue(`${path}.type`, type, ["function"]);
    const fn = item["function"];
    if (fn === undefined || fn === null) throw missingParam(`${path}.function`);
    const f = object(fn, `${path}.function`);
    const name = f["name"];
    if (name === undefined || name === null) throw missingParam(`${path}.function.name`);
    if (typeof name !== "string") throw invalidType(`${path}.function.name`, "a string", name);
    if (!FUNCTION_NAME.test(name)) {
      throw invalidValue(
        `${path}.function.name`,
        `string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.`,
        "invalid_value",
      );
    }
    if (seen.has(name)) throw invalidValue(`${path}.function.name`, `duplicate function name '${name}'.`);
    seen.add(name);
    const tool: ToolDefinition = { name };
    const description = f["description"];
    if (description !== undefined && description !== null) {
      if (typeof description !== "string") throw invalidType(`${path}.function.description`, "a string", description);
      tool.description = description;
    }
    const parameters = f["parameters"];
    if (parameters !== undefined && parameters !== null) {
      tool.parameters = object(parameters, `${path}.function.parameters`);
      // The schema is rendered into the prompt by a recursive writer: a
      // hostile one nested 100 000 deep (JSON.parse takes it) would overflow
      // the stack there and answer 500 instead of 400.
      if (nestedDeeperThan(tool.parameters, MAX_PARAMETERS_DEPTH)) {
        throw invalidValue(`${path}.function.parameters`, `the schema nests deeper than ${MAX_PARAMETERS_DEPTH} levels of objects and arrays.`);
      }
    }
    const strict = f["strict"];
    if (strict !== undefined && strict !== null) {
      if (typeof strict !== "boolean") throw invalidType(`${path}.function.strict`, "a boolean", strict);
      tool.strict = strict;
    }
    tools.push(tool);
  }
  return tools;
}

/**
 * Validates OpenAI's `tool_choice`: `"none" | "auto" | "required"` or
 * `{type: "function", function: {name}}` naming one of `tools`. Absent, it is
 * `auto` when there are tools and `none` otherwise (OpenAI's defaults).
 *
 * @throws RequestParamError when the value is malformed, names an unknown
 *   function, or asks for a call without tools.
 */
export function parseToolChoice(value: unknown, tools: readonly ToolDefinition[], param = "tool_choice"): ToolChoice {
  if (value === undefined || value === null) return tools.length > 0 ? { type: "auto" } : { type: "none" };
  let choice: ToolChoice;
  if (typeof value === "string") {
    if (!(TOOL_CHOICES as readonly string[]).includes(value)) throw invalidEnumValue(param, value, TOOL_CHOICES);
    choice = { type: value as (typeof TOOL_CHOICES)[number] };
  } else {
    if (typeof value !== "object" || Array.isArray(value)) throw invalidType(param, "one of a string or object", value);
    const v = value as Json;
    const type = v["type"];
    if (type === undefined || type === null) throw missingParam(`${param}.type`);
    if (type !== "function") {
      if (typeof type !== "string") throw invalidType(`${param}.type`, "a string", type);
      throw invalidEnumValue(`${param}.type`, type, ["function"]);
    }
    const fn = v["function"];
    if (fn === undefined || fn === null) throw missingParam(`${param}.function`);
    const name = object(fn, `${param}.function`)["name"];
    if (name === undefined || name === null) throw missingParam(`${param}.function.name`);
    if (typeof name !== "string") throw invalidType(`${param}.function.name`, "a string", name);
    if (!tools.some((t) => t.name === name)) {
      throw invalidValue(`${param}.function.name`, `no function named '${name}' was given in 'tools'.`);
    }
    choice = { type: "function", name };
  }
  if (choice.type !== "none" && choice.type !== "auto" && tools.length === 0) {
    throw invalidValue(param, "'tool_choice' is only allowed when 'tools' are specified.");
  }
  return choice;
}

/**
 * Nesting (objects and arrays) allowed in a tool's `parameters`: far beyond
 * any real schema (OpenAI allows 10 levels of schema nesting, 2 JSON levels
 * each), far below what overflows a recursive walk.
 */
const MAX_PARAMETERS_DEPTH = 256;

/** Whether objects and arrays nest deeper than `limit`, walked without recursion (the input is hostile). */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [v, depth] = next;
    if (typeof v !== "object" || v === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) pending.push([child, depth + 1]);
  }
  return false;
}

function object(value: unknown, path: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidType(path, "an object", value);
  return value as Json;
}
