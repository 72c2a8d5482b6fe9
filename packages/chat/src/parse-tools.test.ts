import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidRequestError } from "@smollm/common";
import { parseChatMessages, parseToolChoice, parseTools, RequestParamError } from "./index.ts";

const weather = {
  type: "function",
  function: { name: "get_weather", description: "d", parameters: { type: "object" }, strict: true, extra: 1 },
};

test("tools and tool_choice: defaults, named choice, unknown fields ignored", () => {
  const tools = parseTools([weather, { type: "function", function: { name: "now" } }]);
  assert.deepEqual(tools, [
    { name: "get_weather", description: "d", parameters: { type: "object" }, strict: true },
    { name: "now" },
  ]);
  assert.deepEqual(parseTools(null), []);
  assert.deepEqual(parseToolChoice(undefined, tools), { type: "auto" });
  assert.deepEqual(parseToolChoice(undefined, []), { type: "none" });
  assert.deepEqual(parseToolChoice("required", tools), { type: "required" });
  assert.deepEqual(parseToolChoice({ type: "function", function: { name: "now" } }, tools), { type: "function", name: "now" });
});

const rejects = (fn: () => unknown, param: string, message?: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RequestParamError, String(e));
    assert.equal(e.param, param);
    if (message) assert.match(e.message, message);
    return true;
  });
};

test("bad tools and choices are 400s naming the field", () => {
  rejects(() => parseTools({}), "tools");
  rejects(() => parseTools([{ type: "code_interpreter" }]), "tools[0].type");
  rejects(() => parseTools([{ type: "function" }]), "tools[0].function");
  rejects(() => parseTools([{ type: "function", function: { name: "has space" } }]), "tools[0].function.name", /pattern/);
  rejects(() => parseTools([weather, weather]), "tools[1].function.name", /duplicate/);
  rejects(() => parseTools([{ type: "function", function: { name: "f", parameters: "{}" } }]), "tools[0].function.parameters");
  rejects(() => parseTools([{ type: "function", function: { name: "f", strict: "yes" } }]), "tools[0].function.strict");
  const tools = parseTools([weather]);
  rejects(() => parseToolChoice("always", tools), "tool_choice", /Supported values are: 'none', 'auto', and 'required'/);
  rejects(() => parseToolChoice({ type: "function", function: { name: "nope" } }, tools), "tool_choice.function.name");
  rejects(() => parseToolChoice("required", []), "tool_choice", /only allowed when 'tools'/);
  rejects(() => parseToolChoice(3, tools), "tool_choice");
});

test("assistant tool_calls are parsed; malformed ones rejected", () => {
  const [, assistant] = parseChatMessages([
    { role: "user", content: "x" },
    { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }] },
  ]);
  assert.deepEqual(assistant, { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "f", arguments: '{"a":1}' }] });
  rejects(
    () => parseChatMessages([{ role: "assistant", content: null, tool_calls: [{ id: "c1", function: { name: "f", arguments: { a: 1 } } }] }]),
    "messages[0].tool_calls[0].function.arguments",
  );
  rejects(() => parseChatMessages([{ role: "assistant", content: null, tool_calls: [{ function: { name: "f", arguments: "" } }] }]), "messages[0].tool_calls[0].id");
});

test("arbitrary JSON never throws anything but InvalidRequestError", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (tools, choice) => {
      try {
        parseToolChoice(choice, parseTools(tools));
      } catch (error: unknown) {
        assert.ok(error instanceof InvalidRequestError, String(error));
      }
    }),
    { numRuns: 2000 },
  );
});
