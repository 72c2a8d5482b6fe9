import { test } from "node:test";
import assert from "node:assert/strict";
import { SSE_DONE, SseFrames, sseErrorFrame } from "./sse-frames.ts";

const frames = new SseFrames("chatcmpl-1", 1700000000, "SmolLM3-3B", "fp_x", false);
const head = 'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"SmolLM3-3B","system_fingerprint":"fp_x","choices":[';

test("role, content and finish frames are OpenAI's, byte for byte", () => {
  assert.equal(frames.role, `${head}{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`);
  assert.equal(frames.content("Hi"), `${head}{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}\n\n`);
  assert.equal(frames.finish("length"), `${head}{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}\n\n`);
  assert.equal(SSE_DONE, "data: [DONE]\n\n");
});

test("every frame is one SSE event of valid JSON", () => {
  const nasty = 'line1\nline2\r\n\n"quoted" \\ \u2028 \u0000 😀 data: [DONE]';
  const frame = frames.content(nasty);
  assert.ok(frame.startsWith("data: ") && frame.endsWith("\n\n"));
  // No raw newline inside the event: a newline in the text would split it.
  assert.equal(frame.slice(0, -2).includes("\n"), false);
  const parsed = JSON.parse(frame.slice(6, -2)) as { choices: { delta: { content: string } }[] };
  assert.equal(parsed.choices[0]?.delta.content, nasty);
});

test("include_usage: usage null on chunks, then a usage chunk without choices", () => {
  const f = new SseFrames("chatcmpl-1", 1700000000, "SmolLM3-3B", "fp_x", true);
  assert.equal(f.content("a"), `${head}{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n`);
  assert.equal(
    f.usage({ promptTokens: 10, completionTokens: 5, cachedTokens: 8 }),
    `${head}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":8}}}\n\n`,
  );
});

test("error event", () => {
  assert.equal(
    sseErrorFrame({ message: "m", type: "server_error", param: null, code: "unavailable" }),
    'data: {"error":{"message":"m","type":"server_error","param":null,"code":"unavailable"}}\n\n',
  );
});

test("model names are JSON-escaped once, at construction", () => {
  const f = new SseFrames("id", 1, 'we"ird', "fp", false);
  assert.equal((JSON.parse(f.content("x").slice(6, -2)) as { model: string }).model, 'we"ird');
});
