/**
 * Property-based fuzzing of the request parser, beyond chat-request.test.ts's
 * arbitrary-JSON property: every field the parser reads (tools, tool_choice,
 * response_format, logprobs, reasoning) gets hostile values, including deep
 * nesting, huge strings and lone surrogates. The parser must answer each with
 * an InvalidRequestError naming a field and carrying a message, or accept it
 * and render its prompt; never another exception (a TypeError or RangeError would be a 500, a stack
 * overflow on deep nesting a crash risk).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidRequestError } from "@smollm/common";
import { parseChatCompletionRequest } from "./chat-request.ts";
import { loadConfig } from "./config.ts";
import { generationParams } from "./generation-params.ts";

/** `depth` levels of `[…]` or `{"a": …}` around a leaf. */
function nested(depth: number, kind: "array" | "object", leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = kind === "array" ? [v] : { a: v };
  return v;
}

const hostile = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  fc.constantFrom(null, true, false, 0, -1, -0, 1e308, -1e308, 2 ** 53, 2 ** 64, 0.5, "", " ", "\u0000", "\ud800", "\udfff\ud800"),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.integer({ min: 50, max: 20_000 }).map((d) => nested(d, "array")),
  fc.integer({ min: 50, max: 20_000 }).map((d) => nested(d, "object")),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => "x".repeat(n)),
);

const fn = fc.record(
  {
    name: fc.oneof(fc.constantFrom("get_weather", "a-b_c", "", "bad name!", "x".repeat(65)), hostile),
    description: fc.oneof(fc.string(), hostile),
    parameters: fc.oneof(
      fc.constant({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
      fc.record({ type: fc.oneof(fc.constantFrom("object", "string", "array", "nope"), hostile), properties: hostile, items: hostile, required: hostile }, { requiredKeys: [] }),
      fc.integer({ min: 50, max: 5_000 }).map((d) => ({ type: "object", properties: { a: nested(d, "object", { type: "string" }) } })),
      hostile,
    ),
    strict: fc.oneof(fc.boolean(), hostile),
  },
  { requiredKeys: [] },
);
const tool = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.oneof(fc.constant("function"), hostile), function: fc.oneof(fn, hostile) }, { requiredKeys: [] }) },
  hostile,
);
const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom("system", "developer", "user", "assistant", "tool", "wizard", ""), hostile),
    content: fc.oneof(fc.string(), fc.array(fc.record({ type: fc.oneof(fc.constant("text"), hostile), text: fc.oneof(fc.string(), hostile) })), hostile),
    name: hostile,
    tool_call_id: hostile,
    tool_calls: fc.oneof(
      fc.array(fc.record({ id: hostile, type: fc.oneof(fc.constant("function"), hostile), function: fc.record({ name: hostile, arguments: fc.oneof(fc.json(), hostile) }, { requiredKeys: [] }) }, { requiredKeys: [] }), { maxLength: 3 }),
      hostile,
    ),
    reasoning_content: hostile,
  },
  { requiredKeys: ["role", "content"] },
);
const body = fc.record(
  {
    model: fc.oneof(fc.constant("SmolLM3-3B"), hostile),
    messages: fc.oneof({ weight: 4, arbitrary: fc.array(message, { minLength: 1, maxLength: 4 }) }, hostile),
    max_tokens: hostile,
    max_completion_tokens: hostile,
    temperature: hostile,
    top_p: hostile,
    top_k: hostile,
    min_p: hostile,
    seed: hostile,
    presence_penalty: hostile,
    frequency_penalty: hostile,
    stop: fc.oneof(fc.array(fc.string(), { maxLength: 6 }), hostile),
    n: hostile,
    stream: hostile,
    stream_options: fc.oneof(fc.record({ include_usage: hostile }), hostile),
    tools: fc.oneof(fc.array(tool, { maxLength: 4 }), hostile),
    tool_choice: fc.oneof(
      fc.constantFrom("auto", "none", "required", "sometimes"),
      fc.record({ type: fc.oneof(fc.constant("function"), hostile), function: fc.oneof(fc.record({ name: hostile }), hostile) }, { requiredKeys: [] }),
      hostile,
    ),
    parallel_tool_calls: hostile,
    response_format: fc.oneof(
      fc.record({ type: fc.constantFrom("text", "json_object", "json_schema", "yaml") }),
      fc.record({ type: fc.constant("json_schema"), json_schema: fc.oneof(fc.record({ name: hostile, schema: hostile, strict: hostile }, { requiredKeys: [] }), hostile) }),
      hostile,
    ),
    logprobs: hostile,
    top_logprobs: hostile,
    reasoning_effort: hostile,
    enable_thinking: hostile,
    chat_template_kwargs: fc.oneof(fc.record({ enable_thinking: hostile }), hostile),
    ignore_eos: hostile,
    user: hostile,
  },
  { requiredKeys: ["model", "messages"] },
);

const config = loadConfig({ argv: [], env: {} });

function check(input: unknown): void {
  try {
    // Rendering the prompt is part of the check: an accepted request must
    // render (a deep tool schema once overflowed the stack there: a 500).
    generationParams(parseChatCompletionRequest(input), config, "fuzz");
  } catch (error: unknown) {
    assert.ok(error instanceof InvalidRequestError, `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    assert.ok(error.message.length > 0 && error.message.length < 2_000, `message of ${error.message.length} chars`);
    assert.ok(error.param === undefined || (typeof error.param === "string" && error.param.length < 2_000), `param ${String(error.param)}`);
  }
}

test("property: hostile values in every field get an InvalidRequestError naming the field, or are accepted; nothing else", () => {
  fc.assert(fc.property(body, check), { numRuns: 1_500 });
});

test("deep nesting anywhere (50 000 levels) is refused cleanly, never a stack overflow", () => {
  const base = { model: "SmolLM3-3B", messages: [{ role: "user", content: "hi" }] };
  const deepA = nested(50_000, "array");
  const deepO = nested(50_000, "object");
  for (const deep of [deepA, deepO]) {
    check(deep);
    check({ ...base, messages: deep });
    check({ ...base, messages: [{ role: "user", content: deep }] });
    check({ ...base, messages: [{ role: "user", content: [{ type: "text", text: deep }] }] });
    check({ ...base, tools: deep });
    check({ ...base, tools: [{ type: "function", function: { name: "f", parameters: deep } }] });
    check({ ...base, tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: deep } } } }] });
    check({ ...base, response_format: { type: "json_schema", json_schema: { name: "r", schema: deep } } });
    check({ ...base, response_format: { type: "json_schema", json_schema: { name: "r", schema: { type: "object", properties: { a: deep } } } } });
    check({ ...base, tool_choice: deep, tools: [{ type: "function", function: { name: "f" } }] });
    check({ ...base, stop: deep });
    check({ ...base, stream_options: deep });
  }
  // A deep but well-formed JSON schema, where a forced tool call or a JSON
  // response format turns it into a decoding constraint.
  let schema: unknown = { type: "string" };
  for (let i = 0; i < 20_000; i++) schema = { type: "object", properties: { a: schema }, required: ["a"] };
  check({ ...base, tools: [{ type: "function", function: { name: "f", parameters: schema } }], tool_choice: "required" });
  check({ ...base, tools: [{ type: "function", function: { name: "f", parameters: schema } }], tool_choice: { type: "function", function: { name: "f" } } });
  check({ ...base, response_format: { type: "json_schema", json_schema: { name: "r", schema } } });
  // Tools are rendered into the prompt even when no call is forced.
  let deepParameters: unknown = { type: "string" };
  for (let i = 0; i < 100_000; i++) deepParameters = { type: "object", properties: { a: deepParameters } };
  check({ ...base, tools: [{ type: "function", function: { name: "f", parameters: deepParameters } }] });
});
