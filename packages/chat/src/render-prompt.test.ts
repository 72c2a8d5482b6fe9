import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_INSTRUCTIONS_NO_THINK,
  DEFAULT_INSTRUCTIONS_THINK,
  formatTemplateDate,
  renderChatPrompt,
  resolveReasoningMode,
  type ChatMessage,
} from "./index.ts";

// Expected strings were checked against SmolLM3's official Jinja template rendered
// by jinja2 (as transformers does), with this package's two deliberate changes:
// the system turn always closes with <|im_end|>, and earlier reasoning is dropped.

const today = "16 August 2026";
const header = (mode: "/think" | "/no_think", instructions: string): string =>
  `<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: ${today}\n` +
  `Reasoning Mode: ${mode}\n\n## Custom Instructions\n\n${instructions}\n\n<|im_end|>\n`;

test("no system message: default think preamble, open assistant turn", () => {
  const prompt = renderChatPrompt([{ role: "user", content: "Hi" }], { today });
  assert.equal(
    prompt,
    header("/think", DEFAULT_INSTRUCTIONS_THINK) + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("system message becomes the custom instructions, right-stripped", () => {
  const prompt = renderChatPrompt(
    [
      { role: "system", content: "You are terse.  \n" },
      { role: "user", content: "Hi" },
    ],
    { today },
  );
  assert.equal(prompt, header("/think", "You are terse.") + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
});

test("/no_think flag: flag removed, empty think block pre-filled", () => {
  const prompt = renderChatPrompt(
    [
      { role: "system", content: "Be brief. /no_think" },
      { role: "user", content: "Hi" },
    ],
    { today },
  );
  assert.equal(
    prompt,
    header("/no_think", "Be brief.") +
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
  );
});

test("a system message of only a flag falls back to the mode's default preamble", () => {
  assert.equal(
    renderChatPrompt([{ role: "system", content: "/no_think" }, { role: "user", content: "x" }], { today }),
    header("/no_think", DEFAULT_INSTRUCTIONS_NO_THINK) +
      "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
  );
  assert.equal(
    renderChatPrompt([{ role: "system", content: " /think " }, { role: "user", content: "x" }], { today }),
    header("/think", DEFAULT_INSTRUCTIONS_THINK) + "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("enableThinking overrides the system flags (which are still removed)", () => {
  const messages: ChatMessage[] = [
    { role: "system", content: "Sys /think" },
    { role: "user", content: "Q" },
  ];
  assert.equal(
    renderChatPrompt(messages, { today, enableThinking: false }),
    header("/no_think", "Sys") + "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
  );
  assert.equal(resolveReasoningMode(messages), "think");
  assert.equal(resolveReasoningMode(messages, false), "no_think");
  assert.equal(resolveReasoningMode([{ role: "system", content: "/no_think /think" }]), "no_think");
  assert.equal(resolveReasoningMode([{ role: "user", content: "/no_think" }]), "think");
});

test("multi-turn: earlier reasoning dropped, leading newlines stripped, tool results as user turns", () => {
  const messages: ChatMessage[] = [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "<think>\nadd them\n</think>\n\n4" },
    { role: "tool", content: '{"ok":true}' },
    { role: "system", content: "ignored: only the first message can be the system prompt" },
    { role: "user", content: "and 3+3?" },
  ];
  const turns =
    "<|im_start|>user\n2+2?<|im_end|>\n" +
    "<|im_start|>assistant\n4<|im_end|>\n" +
    '<|im_start|>user\n{"ok":true}<|im_end|>\n' +
    "<|im_start|>user\nand 3+3?<|im_end|>\n";
  assert.equal(
    renderChatPrompt(messages, { today }),
    header("/think", DEFAULT_INSTRUCTIONS_THINK) + turns + "<|im_start|>assistant\n",
  );
  assert.equal(
    renderChatPrompt(messages, { today, enableThinking: false }),
    header("/no_think", DEFAULT_INSTRUCTIONS_NO_THINK) +
      turns.replace("<|im_start|>assistant\n4", "<|im_start|>assistant\n<think>\n\n</think>\n4") +
      "<|im_start|>assistant\n<think>\n\n</think>\n",
  );
});

test("addGenerationPrompt false ends after the last turn", () => {
  const prompt = renderChatPrompt(
    [
      { role: "user", content: "a" },
      { role: "assistant", content: "\n\nb" },
    ],
    { today, addGenerationPrompt: false },
  );
  assert.equal(
    prompt,
    header("/think", DEFAULT_INSTRUCTIONS_THINK) + "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n",
  );
});

test("/system_override uses the system message verbatim, without metadata", () => {
  const prompt = renderChatPrompt(
    [
      { role: "system", content: "Raw system text /system_override /no_think" },
      { role: "user", content: "u" },
    ],
    { today },
  );
  assert.equal(
    prompt,
    "<|im_start|>system\nRaw system text<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
  );
});

test("rstrip follows Python's whitespace set, not JavaScript's", () => {
  // U+0085 and U+001C are whitespace to Python; U+FEFF is not (JS trimEnd would strip it).
  const prompt = renderChatPrompt([{ role: "system", content: "A\ufeff\u0085\u001c \n" }, { role: "user", content: "u" }], {
    today,
  });
  assert.ok(prompt.includes("## Custom Instructions\n\nA\ufeff\n\n<|im_end|>\n"));
});

test("date: injectable Date (UTC, zero-padded day), string, or omitted with null", () => {
  assert.equal(formatTemplateDate(new Date(Date.UTC(2025, 10, 5, 23, 59))), "05 November 2025");
  assert.equal(formatTemplateDate(new Date(Date.UTC(2026, 0, 31))), "31 January 2026");
  const withDate = renderChatPrompt([{ role: "user", content: "u" }], { today: new Date(Date.UTC(2026, 7, 16)) });
  assert.equal(withDate, renderChatPrompt([{ role: "user", content: "u" }], { today }));
  const noDate = renderChatPrompt([{ role: "user", content: "u" }], { today: null });
  assert.ok(noDate.startsWith("<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n"));
  // Default: the current UTC date.
  const now = renderChatPrompt([{ role: "user", content: "u" }]);
  assert.ok(now.includes(`Today Date: ${formatTemplateDate(new Date())}\n`));
});

test("a long whitespace run inside the system message renders quickly", () => {
  const content = `a${" ".repeat(200_000)}b${" ".repeat(200_000)}`;
  const started = performance.now();
  const prompt = renderChatPrompt([{ role: "system", content }, { role: "user", content: "u" }], { today });
  assert.ok(performance.now() - started < 200);
  assert.ok(prompt.includes(`a${" ".repeat(200_000)}b\n\n<|im_end|>`));
});

test("tools: the xml_tools section closes the system turn; earlier calls and results render back", () => {
  const tools = [
    {
      name: "get_weather",
      description: "Météo d'une ville",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
    { name: "now" },
  ];
  const messages: ChatMessage[] = [
    { role: "system", content: "Be brief. /no_think" },
    { role: "user", content: "Weather in São Paulo?" },
    {
      role: "assistant",
      content: "",
      toolCalls: [
        { id: "call_1", name: "get_weather", arguments: '{"city": "São Paulo"}' },
        { id: "call_2", name: "now", arguments: "not json" },
      ],
    },
    { role: "tool", content: '{"temp_c": 22}', toolCallId: "call_1" },
  ];
  const prompt = renderChatPrompt(messages, { today, tools });
  const toolsSection =
    "### Tools\n\nYou may call one or more functions to assist with the user query.\n" +
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n" +
    '{"type": "function", "function": {"name": "get_weather", "description": "Météo d\'une ville", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n' +
    '{"type": "function", "function": {"name": "now"}}\n' +
    "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n';
  assert.equal(
    prompt,
    header("/no_think", "Be brief.").replace("<|im_end|>\n", `${toolsSection}<|im_end|>\n`) +
      "<|im_start|>user\nWeather in São Paulo?<|im_end|>\n" +
      "<|im_start|>assistant\n<think>\n\n</think>\n" +
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "São Paulo"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "now", "arguments": "not json"}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n{"temp_c": 22}<|im_end|>\n' +
      "<|im_start|>assistant\n<think>\n\n</think>\n",
  );
  // No tools: no section; /system_override: none either.
  assert.ok(!renderChatPrompt(messages, { today }).includes("### Tools"));
  assert.ok(!renderChatPrompt([{ role: "system", content: "x /system_override" }, { role: "user", content: "u" }], { today, tools }).includes("### Tools"));
});
