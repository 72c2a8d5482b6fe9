import type { ChatMessage, ChatToolCall, ReasoningMode } from "./messages.ts";
import { pythonJson } from "./python-json.ts";
import {
  DEFAULT_INSTRUCTIONS_NO_THINK,
  DEFAULT_INSTRUCTIONS_THINK,
  EMPTY_THINK_BLOCK,
  IM_END,
  IM_START,
  KNOWLEDGE_CUTOFF,
  NO_THINK_FLAG,
  SYSTEM_OVERRIDE_FLAG,
  THINK_END,
  THINK_FLAG,
  TOOL_CALL_END,
  TOOL_CALL_START,
  TOOLS_POSTAMBLE,
  TOOLS_PREAMBLE,
  formatTemplateDate,
} from "./smollm3-template.ts";
import type { ToolDefinition } from "./tools.ts";

/** Options of {@link renderChatPrompt}. */
export interface RenderChatPromptOptions {
  /**
   * Reasoning on or off. Overrides a `/think` or `/no_think` flag in the system
   * message; when unset the flag decides, and without one reasoning is on.
   */
  enableThinking?: boolean;
  /** End with the assistant turn's opening so the model answers next; default true. */
  addGenerationPrompt?: boolean;
  /**
   * The "Today Date" of the metadata block: a Date (formatted `%d %B %Y`, UTC),
   * a preformatted string, or `null` to leave the line out. Default: now.
   */
  today?: Date | string | null;
  /**
   * Functions the model may call, listed in the system turn's "### Tools"
   * section (the template's `xml_tools`); none when empty or absent.
   */
  tools?: readonly ToolDefinition[];
}

/**
 * The reasoning mode a conversation renders in: `enableThinking` if given,
 * else the first system message's `/no_think` or `/think` flag (in that order,
 * as the template tests them), else think.
 */
export function resolveReasoningMode(messages: readonly ChatMessage[], enableThinking?: boolean): ReasoningMode {
  if (enableThinking !== undefined) return enableThinking ? "think" : "no_think";
  const first = messages[0];
  if (first?.role === "system") {
    if (first.content.includes(NO_THINK_FLAG)) return "no_think";
    if (first.content.includes(THINK_FLAG)) return "think";
  }
  return "think";
}

/**
 * Renders a conversation in SmolLM3's ChatML prompt format, following the
 * model's official chat template:
 *
 * - a system turn with a "## Metadata" block (knowledge cutoff, today's date,
 *   reasoning mode) and "## Custom Instructions" (the first message's text if it
 *   is a system message, flags removed; otherwise the model's default preamble
 *   for the mode), then, when tools are given, the "### Tools" section
 *   (`xml_tools`: one JSON line per tool inside `<tools></tools>` and the call
 *   format). A system message containing `/system_override` is used verbatim
 *   instead of the metadata block (and without tools);
 * - user turns as is, `tool` results as user turns; system messages after the
 *   first are not rendered (the template skips them);
 * - assistant turns with their reasoning dropped (only the text after the last
 *   `</think>` is kept), their `tool_calls` as `<tool_call>` blocks and, in
 *   no-think mode, an empty `<think>` block first;
 * - the generation prompt `<|im_start|>assistant\n`, pre-filled with an empty
 *   think block in no-think mode.
 *
 * Deliberate differences from the official template: the system turn always
 * ends with `<|im_end|>` (the official one closes it only when tools are
 * listed, which is the known bug llama.cpp's and this repository's GGUF copies
 * fix), the date is injectable and UTC, array contents are joined text rather
 * than dropped, earlier turns' reasoning is dropped, tools are JSON (the
 * official `tool | string` prints Python reprs) and earlier tool calls are
 * rendered (the official template drops them).
 */
export function renderChatPrompt(messages: readonly ChatMessage[], options: RenderChatPromptOptions = {}): string {
  const mode = resolveReasoningMode(messages, options.enableThinking);
  let prompt = renderSystemTurn(
    messages[0],
    mode,
    options.today === undefined ? new Date() : options.today,
    options.tools ?? [],
  );
  const assistantOpen = mode === "think" ? `${IM_START}assistant\n` : `${IM_START}assistant\n${EMPTY_THINK_BLOCK}`;
  for (const message of messages) {
    switch (message.role) {
      case "user":
      case "tool":
        prompt += `${IM_START}user\n${message.content}${IM_END}\n`;
        break;
      case "assistant":
        prompt += assistantOpen + assistantText(message) + IM_END + "\n";
        break;
      case "system":
        // Only the first message can be the system prompt; the template ignores others.
        break;
    }
  }
  if (options.addGenerationPrompt ?? true) prompt += assistantOpen;
  return prompt;
}

function renderSystemTurn(
  first: ChatMessage | undefined,
  mode: ReasoningMode,
  today: Date | string | null,
  tools: readonly ToolDefinition[],
): string {
  const systemMessage = first?.role === "system" ? first.content : undefined;
  const customInstructions =
    systemMessage === undefined
      ? ""
      : pythonRstrip(systemMessage.replaceAll(NO_THINK_FLAG, "").replaceAll(THINK_FLAG, ""));
  if (systemMessage?.includes(SYSTEM_OVERRIDE_FLAG)) {
    return `${IM_START}system\n${pythonRstrip(customInstructions.replaceAll(SYSTEM_OVERRIDE_FLAG, ""))}${IM_END}\n`;
  }
  let turn = `${IM_START}system\n## Metadata\n\nKnowledge Cutoff Date: ${KNOWLEDGE_CUTOFF}\n`;
  if (today !== null) turn += `Today Date: ${typeof today === "string" ? today : formatTemplateDate(today)}\n`;
  turn += `Reasoning Mode: ${mode === "think" ? THINK_FLAG : NO_THINK_FLAG}\n\n## Custom Instructions\n\n`;
  if (customInstructions !== "") turn += customInstructions;
  else turn += mode === "think" ? DEFAULT_INSTRUCTIONS_THINK : DEFAULT_INSTRUCTIONS_NO_THINK;
  turn += "\n\n";
  if (tools.length > 0) {
    turn += TOOLS_PREAMBLE;
    for (const tool of tools) turn += `${renderTool(tool)}\n`;
    turn += `${TOOLS_POSTAMBLE}\n\n`;
  }
  return `${turn}${IM_END}\n`;
}

/**
 * A tool as the template lists it: the OpenAI tool object, normalized (known
 * fields only, in OpenAI's order) so equal tools always render equally and
 * keep the KV-cache prefix of the system turn stable.
 */
function renderTool(tool: ToolDefinition): string {
  const fn: Record<string, unknown> = { name: tool.name };
  if (tool.description !== undefined) fn["description"] = tool.description;
  if (tool.parameters !== undefined) fn["parameters"] = tool.parameters;
  return pythonJson({ type: "function", function: fn });
}

/**
 * An earlier assistant turn: its answer without reasoning or leading
 * newlines, then its calls as the model writes them, so a conversation with
 * tool results reads to the model as the one it produced.
 */
function assistantText(message: ChatMessage): string {
  let text = stripLeadingNewlines(dropReasoning(message.content));
  const calls = message.toolCalls ?? [];
  for (let i = 0; i < calls.length; i++) {
    if (i > 0 || text !== "") text += "\n";
    text += renderToolCall(calls[i] as ChatToolCall);
  }
  return text;
}

/** `<tool_call>\n{"name": "f", "arguments": {…}}\n</tool_call>`; arguments that are not JSON are quoted. */
export function renderToolCall(call: Pick<ChatToolCall, "name" | "arguments">): string {
  let args = call.arguments.trim();
  try {
    JSON.parse(args);
  } catch {
    args = JSON.stringify(call.arguments);
  }
  return `${TOOL_CALL_START}\n{"name": ${JSON.stringify(call.name)}, "arguments": ${args}}\n${TOOL_CALL_END}`;
}

/** Keeps what follows the last `</think>`: the answer without the reasoning. */
function dropReasoning(content: string): string {
  const end = content.lastIndexOf(THINK_END);
  return end === -1 ? content : content.slice(end + THINK_END.length);
}

/** Python's `str.lstrip("\n")`. */
function stripLeadingNewlines(text: string): string {
  let start = 0;
  while (start < text.length && text.charCodeAt(start) === 10) start++;
  return start === 0 ? text : text.slice(start);
}

/**
 * Python's `str.rstrip()`: its whitespace set differs from JS `trimEnd()`
 * (Python strips U+001C–U+001F and U+0085 but keeps U+FEFF). A loop rather
 * than a `/\s+$/` regex, which backtracks quadratically on long inner runs.
 */
function pythonRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && isPythonSpace(text.charCodeAt(end - 1))) end--;
  return end === text.length ? text : text.slice(0, end);
}

function isPythonSpace(c: number): boolean {
  if (c <= 0x20) return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}
