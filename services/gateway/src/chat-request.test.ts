import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidRequestError } from "@smollm/common";
import { RequestParamError } from "@smollm/chat";
import { parseChatCompletionRequest } from "./chat-request.ts";

const base = { model: "SmolLM3-3B", messages: [{ role: "user", content: "hi" }] };

test("minimal request: defaults are undefined, flags false", () => {
  assert.deepEqual(parseChatCompletionRequest(base), {
    model: "SmolLM3-3B",
    messages: [{ role: "user", content: "hi" }],
    maxTokens: undefined,
    temperature: undefined,
    topP: undefined,
    topK: undefined,
    minP: undefined,
    seed: undefined,
    presencePenalty: undefined,
    frequencyPenalty: undefined,
    stop: [],
    stream: false,
    includeUsage: false,
    user: undefined,
    enableThinking: undefined,
    ignoreEos: false,
    tools: [],
    toolChoice: { type: "none" },
    parallelToolCalls: true,
    responseFormat: { type: "text" },
    constraint: undefined,
    topLogprobs: undefined,
  });
});

test("every field, nulls as absent, unknown fields ignored", () => {
  const r = parseChatCompletionRequest({
    ...base,
    max_tokens: 10,
    max_completion_tokens: 20,
    temperature: 0,
    top_p: 1,
    top_k: -1,
    min_p: 0.05,
    seed: -1,
    presence_penalty: -2,
    frequency_penalty: 2,
    stop: ["a", "b"],
    n: 1,
    stream: true,
    stream_options: { include_usage: true },
    user: "u",
    chat_template_kwargs: { enable_thinking: false },
    ignore_eos: true,
    logit_bias: null,
    tools: [],
    whatever: { x: 1 },
  });
  assert.equal(r.maxTokens, 20);
  assert.equal(r.temperature, 0);
  assert.equal(r.topP, 1);
  assert.equal(r.topK, 0);
  assert.equal(r.minP, 0.05);
  assert.equal(r.seed, 0xffff_ffff);
  assert.equal(r.presencePenalty, -2);
  assert.equal(r.frequencyPenalty, 2);
  assert.deepEqual(r.stop, ["a", "b"]);
  assert.equal(r.stream, true);
  assert.equal(r.includeUsage, true);
  assert.equal(r.user, "u");
  assert.equal(r.enableThinking, false);
  assert.equal(r.ignoreEos, true);

  const nulls = parseChatCompletionRequest({ ...base, max_tokens: null, temperature: null, stop: null, n: null, stream: null, stream_options: null, seed: null });
  assert.equal(nulls.maxTokens, undefined);
  assert.equal(nulls.stream, false);
  assert.deepEqual(nulls.stop, []);
  assert.deepEqual(parseChatCompletionRequest({ ...base, stop: "END" }).stop, ["END"]);
  assert.equal(parseChatCompletionRequest({ ...base, enable_thinking: true, chat_template_kwargs: { enable_thinking: false } }).enableThinking, true);
  assert.equal(parseChatCompletionRequest({ ...base, max_tokens: 7 }).maxTokens, 7);
  assert.equal(parseChatCompletionRequest({ ...base, seed: 2 ** 32 + 5 }).seed, 5);
});

const invalid: { name: string; body: unknown; param: string | undefined; code: string; message?: RegExp }[] = [
  { name: "body not an object", body: [1], param: undefined, code: "invalid_type" },
  { name: "body null", body: null, param: undefined, code: "invalid_type" },
  { name: "model missing", body: { messages: base.messages }, param: "model", code: "missing_required_parameter" },
  { name: "model not a string", body: { ...base, model: 1 }, param: "model", code: "invalid_type" },
  { name: "messages missing", body: { model: "m" }, param: "messages", code: "missing_required_parameter" },
  { name: "messages empty", body: { ...base, messages: [] }, param: "messages", code: "empty_array" },
  { name: "bad role", body: { ...base, messages: [{ role: "robot", content: "x" }] }, param: "messages[0].role", code: "invalid_value" },
  { name: "max_tokens zero", body: { ...base, max_tokens: 0 }, param: "max_tokens", code: "integer_below_min_value" },
  { name: "max_tokens fractional", body: { ...base, max_tokens: 1.5 }, param: "max_tokens", code: "invalid_type" },
  { name: "max_tokens string", body: { ...base, max_tokens: "5" }, param: "max_tokens", code: "invalid_type" },
  { name: "max_tokens huge", body: { ...base, max_tokens: 2 ** 40 }, param: "max_tokens", code: "integer_above_max_value" },
  { name: "max_completion_tokens negative", body: { ...base, max_completion_tokens: -1 }, param: "max_completion_tokens", code: "integer_below_min_value" },
  {
    name: "temperature too high",
    body: { ...base, temperature: 2.5 },
    param: "temperature",
    code: "decimal_above_max_value",
    message: /^Invalid 'temperature': decimal above maximum value\. Expected a value <= 2, but got 2\.5 instead\.$/,
  },
  {
    name: "temperature string",
    body: { ...base, temperature: "hot" },
    param: "temperature",
    code: "invalid_type",
    message: /^Invalid type for 'temperature': expected a decimal, but got a string instead\.$/,
  },
  { name: "temperature negative", body: { ...base, temperature: -0.1 }, param: "temperature", code: "decimal_below_min_value" },
  { name: "top_p zero", body: { ...base, top_p: 0 }, param: "top_p", code: "decimal_below_min_value", message: /Expected a value > 0/ },
  { name: "top_p above one", body: { ...base, top_p: 1.01 }, param: "top_p", code: "decimal_above_max_value" },
  { name: "top_k below -1", body: { ...base, top_k: -2 }, param: "top_k", code: "integer_below_min_value" },
  { name: "top_k decimal", body: { ...base, top_k: 2.5 }, param: "top_k", code: "invalid_type" },
  { name: "min_p above one", body: { ...base, min_p: 2 }, param: "min_p", code: "decimal_above_max_value" },
  { name: "seed decimal", body: { ...base, seed: 0.5 }, param: "seed", code: "invalid_type" },
  { name: "seed boolean", body: { ...base, seed: true }, param: "seed", code: "invalid_type" },
  { name: "presence_penalty", body: { ...base, presence_penalty: -3 }, param: "presence_penalty", code: "decimal_below_min_value" },
  { name: "frequency_penalty", body: { ...base, frequency_penalty: 2.1 }, param: "frequency_penalty", code: "decimal_above_max_value" },
  { name: "stop number", body: { ...base, stop: 5 }, param: "stop", code: "invalid_type" },
  { name: "stop too many", body: { ...base, stop: ["a", "b", "c", "d", "e"] }, param: "stop", code: "array_above_max_length" },
  { name: "stop item type", body: { ...base, stop: ["a", 1] }, param: "stop[1]", code: "invalid_type" },
  { name: "stop empty string", body: { ...base, stop: "" }, param: "stop", code: "string_below_min_length" },
  { name: "stop empty item", body: { ...base, stop: ["a", ""] }, param: "stop[1]", code: "string_below_min_length" },
  {
    name: "n = 2",
    body: { ...base, n: 2 },
    param: "n",
    code: "unsupported_value",
    message: /^Invalid 'n': only n=1 is supported by this server, but got 2\.$/,
  },
  { name: "n = 0", body: { ...base, n: 0 }, param: "n", code: "integer_below_min_value" },
  { name: "n string", body: { ...base, n: "1" }, param: "n", code: "invalid_type" },
  { name: "stream string", body: { ...base, stream: "yes" }, param: "stream", code: "invalid_type" },
  { name: "stream_options array", body: { ...base, stream: true, stream_options: [] }, param: "stream_options", code: "invalid_type" },
  { name: "include_usage string", body: { ...base, stream: true, stream_options: { include_usage: "y" } }, param: "stream_options.include_usage", code: "invalid_type" },
  { name: "user number", body: { ...base, user: 5 }, param: "user", code: "invalid_type" },
  { name: "enable_thinking string", body: { ...base, chat_template_kwargs: { enable_thinking: "no" } }, param: "chat_template_kwargs.enable_thinking", code: "invalid_type" },
  { name: "ignore_eos number", body: { ...base, ignore_eos: 1 }, param: "ignore_eos", code: "invalid_type" },
];

for (const c of invalid) {
  test(`400: ${c.name}`, () => {
    assert.throws(
      () => parseChatCompletionRequest(c.body),
      (error: unknown) => {
        assert.ok(error instanceof RequestParamError, String(error));
        assert.equal(error.code, "invalid_argument");
        assert.equal(error.param, c.param);
        assert.equal(error.apiCode, c.code);
        if (c.message) assert.match(error.message, c.message);
        return true;
      },
    );
  });
}

test("property: arbitrary JSON never throws anything but InvalidRequestError", () => {
  const messages = fc.array(
    fc.record(
      {
        role: fc.oneof(fc.constantFrom("system", "user", "assistant", "tool", "developer"), fc.jsonValue()),
        content: fc.oneof(fc.string(), fc.jsonValue(), fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text: fc.jsonValue() }))),
      },
      { requiredKeys: [] },
    ),
  );
  const nearlyValid = fc.record(
    {
      model: fc.oneof(fc.constant("SmolLM3-3B"), fc.jsonValue()),
      messages: fc.oneof(messages, fc.jsonValue()),
      max_tokens: fc.jsonValue(),
      temperature: fc.oneof(fc.double(), fc.jsonValue()),
      top_p: fc.double(),
      top_k: fc.integer(),
      seed: fc.oneof(fc.integer(), fc.double()),
      stop: fc.jsonValue(),
      n: fc.jsonValue(),
      stream: fc.jsonValue(),
      stream_options: fc.jsonValue(),
      chat_template_kwargs: fc.jsonValue(),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), nearlyValid), (body) => {
      try {
        parseChatCompletionRequest(body);
      } catch (error: unknown) {
        assert.ok(error instanceof InvalidRequestError, `threw ${String(error)}`);
      }
    }),
    { numRuns: 3000 },
  );
});
