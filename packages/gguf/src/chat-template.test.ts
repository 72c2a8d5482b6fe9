/**
 * Renders the chat template directly with @huggingface/jinja (the engine node-llama-cpp uses,
 * rendering real message contents the way HF transformers / llama-server do), to check
 * SmolLM3's content-dependent rules: /think and /no_think flags, defaults, tools, tool calls.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Template } from "@huggingface/jinja";
import { SMOLLM3_CHAT_TEMPLATE } from "./chat-template.ts";

const template = new Template(SMOLLM3_CHAT_TEMPLATE);
const render = (vars: Record<string, unknown>): string => template.render({ add_generation_prompt: true, ...vars });
const header = (mode: string, instructions: string): string =>
  `<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: ${mode}\n\n## Custom Instructions\n\n${instructions}\n\n`;

test("reasoning is on by default; enable_thinking=false pre-fills an empty think block", () => {
  const messages = [{ role: "user", content: "Hi" }];
  const on = render({ messages });
  assert.ok(on.startsWith(header("/think", "").slice(0, -2) + "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role"), on);
  assert.ok(on.endsWith("<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
  const off = render({ messages, enable_thinking: false });
  assert.equal(off, `${header("/no_think", "You are a helpful AI assistant named SmolLM, trained by Hugging Face.")}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n`);
});

test("/no_think and /think in the system message override enable_thinking and are stripped", () => {
  const noThink = render({ messages: [{ role: "system", content: "Be brief. /no_think" }, { role: "user", content: "Hi" }] });
  assert.equal(noThink, `${header("/no_think", "Be brief.")}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n`);
  const think = render({ messages: [{ role: "system", content: "/think Be brief." }, { role: "user", content: "Hi" }], enable_thinking: false });
  assert.ok(think.startsWith(header("/think", " Be brief.")));
  assert.ok(think.endsWith("<|im_start|>assistant\n"));
});

test("history: assistant turns in no-think mode get the empty think block; tool results are user turns", () => {
  const out = render({
    enable_thinking: false,
    add_generation_prompt: false,
    messages: [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
      { role: "tool", content: "{\"temp\": 21}" },
      { role: "assistant", content: "\n21 °C." },
    ],
  });
  assert.ok(
    out.endsWith(
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<think>\n\n</think>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n{"temp": 21}<|im_end|>\n' +
        "<|im_start|>assistant\n<think>\n\n</think>\n21 °C.<|im_end|>\n",
    ),
    out,
  );
});

test("tools are listed in <tools> with SmolLM3's <tool_call> instructions", () => {
  const tool = { type: "function", function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };
  const out = render({ messages: [{ role: "user", content: "Hi" }], tools: [tool] });
  assert.ok(out.includes("### Tools\n\nYou may call one or more functions to assist with the user query.\nYou are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n{"), out);
  assert.ok(out.includes('"name": "get_weather"'));
  assert.ok(out.includes("</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n\n<|im_end|>\n"));
});

test("/system_override replaces the whole system prompt", () => {
  const out = render({ messages: [{ role: "system", content: "Only this. /system_override" }, { role: "user", content: "Hi" }] });
  assert.ok(out.startsWith("<|im_start|>system\nOnly this.<|im_end|>\n<|im_start|>user\nHi"), out);
});
