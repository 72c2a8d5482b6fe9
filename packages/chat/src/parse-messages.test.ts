import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidRequestError } from "@smollm/common";
import { parseChatMessages, RequestParamError } from "./index.ts";

test("normalizes roles and content", () => {
  assert.deepEqual(
    parseChatMessages([
      { role: "developer", content: "sys" },
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }], name: "bob", extra: 1 },
      { role: "assistant", content: null, tool_calls: [] },
      { role: "tool", content: "r", tool_call_id: "call_1" },
    ]),
    [
      { role: "system", content: "sys" },
      { role: "user", content: "a\nb", name: "bob" },
      { role: "assistant", content: "" },
      { role: "tool", content: "r", toolCallId: "call_1" },
    ],
  );
});

const cases: { name: string; value: unknown; param: string; apiCode: string; message?: RegExp }[] = [
  { name: "missing", value: undefined, param: "messages", apiCode: "missing_required_parameter" },
  { name: "not an array", value: "hi", param: "messages", apiCode: "invalid_type", message: /expected an array, but got a string/ },
  { name: "empty", value: [], param: "messages", apiCode: "empty_array" },
  { name: "message not an object", value: [1], param: "messages[0]", apiCode: "invalid_type" },
  { name: "role missing", value: [{ content: "x" }], param: "messages[0].role", apiCode: "missing_required_parameter" },
  { name: "role type", value: [{ role: 3, content: "x" }], param: "messages[0].role", apiCode: "invalid_type" },
  {
    name: "role value",
    value: [{ role: "user", content: "a" }, { role: "user", content: "b" }, { role: "wizard", content: "x" }],
    param: "messages[2].role",
    apiCode: "invalid_value",
    message: /Invalid value: 'wizard'\. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'\./,
  },
  { name: "user content missing", value: [{ role: "user" }], param: "messages[0].content", apiCode: "missing_required_parameter" },
  { name: "content type", value: [{ role: "user", content: 5 }], param: "messages[0].content", apiCode: "invalid_type" },
  { name: "part not object", value: [{ role: "user", content: ["x"] }], param: "messages[0].content[0]", apiCode: "invalid_type" },
  {
    name: "image part",
    value: [{ role: "user", content: [{ type: "text", text: "a" }, { type: "image_url", image_url: { url: "x" } }] }],
    param: "messages[0].content[1].type",
    apiCode: "invalid_value",
  },
  { name: "part text missing", value: [{ role: "user", content: [{ type: "text" }] }], param: "messages[0].content[0].text", apiCode: "missing_required_parameter" },
  { name: "name type", value: [{ role: "user", content: "a", name: 1 }], param: "messages[0].name", apiCode: "invalid_type" },
  { name: "tool_call_id type", value: [{ role: "tool", content: "a", tool_call_id: {} }], param: "messages[0].tool_call_id", apiCode: "invalid_type" },
];

for (const c of cases) {
  test(`rejects: ${c.name}`, () => {
    assert.throws(
      () => parseChatMessages(c.value),
      (error: unknown) => {
        assert.ok(error instanceof RequestParamError);
        assert.ok(error instanceof InvalidRequestError);
        assert.equal(error.code, "invalid_argument");
        assert.equal(error.param, c.param);
        assert.equal(error.apiCode, c.apiCode);
        if (c.message) assert.match(error.message, c.message);
        return true;
      },
    );
  });
}

test("custom param prefix", () => {
  assert.throws(() => parseChatMessages([{}], "input"), (e: unknown) => e instanceof RequestParamError && e.param === "input[0].role");
});

test("arbitrary JSON never throws anything but InvalidRequestError", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      try {
        parseChatMessages(value);
      } catch (error: unknown) {
        assert.ok(error instanceof InvalidRequestError, String(error));
      }
    }),
    { numRuns: 2000 },
  );
});
