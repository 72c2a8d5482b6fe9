import { test } from "node:test";
import assert from "node:assert/strict";
import { ClusterError } from "@smollm/common";
import { parseChatCompletionRequest } from "./chat-request.ts";
import { CompletionOutput, type OutputDelta } from "./completion-output.ts";
import { toHttpError } from "./http-errors.ts";

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer", minimum: 1 } }, required: ["city"] },
    },
  },
];
const request = (extra: Record<string, unknown> = {}) =>
  parseChatCompletionRequest({ model: "m", messages: [{ role: "user", content: "x" }], tools, ...extra });

function feed(output: CompletionOutput, text: string, size = 3): OutputDelta[] {
  const deltas: OutputDelta[] = [];
  for (let i = 0; i < text.length; i += size) deltas.push(...output.push(text.slice(i, i + size)));
  return deltas;
}

test("reasoning, content and a valid call; finish_reason tool_calls", () => {
  let n = 0;
  const output = new CompletionOutput(request(), () => `call_${++n}`);
  const deltas = feed(
    output,
    '<think>\nParis weather.\n</think>\n\nChecking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>',
  );
  const end = output.finish("stop");
  assert.equal(end.finishReason, "tool_calls");
  assert.equal(output.reasoning, "Paris weather.");
  assert.equal(output.content, "Checking.");
  assert.deepEqual(output.toolCalls, [{ id: "call_1", name: "get_weather", arguments: '{"city": "Paris", "days": 2}' }]);
  const first = deltas.find((d) => d.kind === "tool_call");
  assert.deepEqual(first, { kind: "tool_call", index: 0, id: "call_1", name: "get_weather", arguments: "" });
  const args = [...deltas, ...end.deltas].flatMap((d) => (d.kind === "tool_call" ? [d.arguments] : [])).join("");
  assert.equal(args, '{"city": "Paris", "days": 2}');
});

const rejectsWith = (fn: () => unknown, message: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ClusterError);
    const http = toHttpError(e);
    assert.equal(http.status, 500);
    assert.equal(http.object.code, "invalid_model_output");
    assert.match(http.object.message, message);
    return true;
  });
};

test("calls are checked: unknown function, schema violations, malformed JSON", () => {
  rejectsWith(() => feed(new CompletionOutput(request()), '<tool_call>{"name": "rm_rf", "arguments": {}}'), /not offered: 'rm_rf'/);
  rejectsWith(
    () => feed(new CompletionOutput(request()), '<tool_call>{"name": "get_weather", "arguments": {"city": "P", "days": 0}}</tool_call>'),
    /do not match its parameters schema: \/days: below the minimum 1/,
  );
  rejectsWith(() => feed(new CompletionOutput(request()), "<tool_call>{oops}</tool_call>"), /malformed function call/);
});

test("a call cut by max_tokens is returned as is, finish_reason length", () => {
  const output = new CompletionOutput(request());
  feed(output, '<tool_call>{"name": "get_weather", "arguments": {"city": "Par');
  const end = output.finish("length");
  assert.equal(end.finishReason, "length");
  assert.equal(output.toolCalls[0]?.arguments, '{"city": "Par');
});

test("tool_choice none and structured output leave the text alone", () => {
  const none = new CompletionOutput(request({ tool_choice: "none" }));
  feed(none, "<tool_call>x</tool_call>");
  assert.equal(none.content, "<tool_call>x</tool_call>");
  const json = new CompletionOutput(request({ response_format: { type: "json_object" } }));
  feed(json, '{"a": "<think>not reasoning</think>"}');
  assert.equal(json.finish("stop").finishReason, "stop");
  assert.equal(json.content, '{"a": "<think>not reasoning</think>"}');
  assert.equal(json.reasoning, "");
});
