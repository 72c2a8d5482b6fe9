import type { ChatMessage, ReasoningMode } from "./messages.ts";
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
  formatTemplateDate,
} from "./smollm3-template.ts";

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
  // Extension points for later issues: `tools` (rendered as the template's
  // "### Tools" section of the system turn) and structured output.
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
 *   for the mode). A system message containing `/system_override` is used
 *   verbatim instead of the metadata block;
 * - user turns as is, `tool` results as user turns; system messages after the
 *   first are not rendered (the template skips them);
 * - assistant turns with their reasoning dropped (only the text after the last
 *   `</think>` is kept) and, in no-think mode, an empty `<think>` block first;
 * - the generation prompt `<|im_start|>assistant\n`, pre-filled with an empty
 *   think block in no-think mode.
 *
 * Deliberate differences from the official template: the system turn always
 * ends with `<|im_end|>` (the official one closes it only when tools are
 * listed, which is the known bug llama.cpp's and this repository's GGUF copies
 * fix), the date is injectable and UTC, array contents are joined text rather
 * than dropped, and earlier turns' reasoning is dropped.
 */
export function renderChatPrompt(messages: readonly ChatMessage[], options: RenderChatPromptOptions = {}): string {
  const mode = resolveReasoningMode(messages, options.enableThinking);
  let prompt = renderSystemTurn(messages[0], mode, options.today === undefined ? new Date() : options.today);
  const assistantOpen = mode === "think" ? `${IM_START}assistant\n` : `${IM_START}assistant\n${EMPTY_THINK_BLOCK}`;
  for (const message of messages) {
    switch (message.role) {
      case "user":
      case "tool":
        prompt += `${IM_START}user\n${message.content}${IM_END}\n`;
        break;
      case "assistant":
        prompt += assistantOpen + stripLeadingNewlines(dropReasoning(message.content)) + IM_END + "\n";
        break;
      case "system":
        // Only the first message can be the system prompt; the template ignores others.
        break;
    }
  }
  if (options.addGenerationPrompt ?? true) prompt += assistantOpen;
  return prompt;
}

function renderSystemTurn(first: ChatMessage | undefined, mode: ReasoningMode, today: Date | string | null): string {
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
  // Extension point: the tools issue inserts "### Tools\n\n…" here.
  return `${turn}\n\n${IM_END}\n`;
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
