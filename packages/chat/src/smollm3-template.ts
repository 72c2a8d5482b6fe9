/**
 * The fixed pieces of SmolLM3's chat template (HuggingFaceTB/SmolLM3-3B,
 * `chat_template` in tokenizer_config.json), copied character for character:
 * the model was fine-tuned on prompts built from exactly these strings.
 */

export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";

/** The knowledge cutoff line the template always writes. */
export const KNOWLEDGE_CUTOFF = "June 2025";

/** Pre-filled after `<|im_start|>assistant\n` in no-think mode: an empty reasoning block. */
export const EMPTY_THINK_BLOCK = "<think>\n\n</think>\n";

/** Opens the model's reasoning block (a special token in SmolLM3's vocabulary). */
export const THINK_START = "<think>";

/** Closes the reasoning block; earlier assistant turns keep only what follows it. */
export const THINK_END = "</think>";

/** Around each function call the model writes: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`. */
export const TOOL_CALL_START = "<tool_call>";
export const TOOL_CALL_END = "</tool_call>";

/** The template's `xml_tools` section opens with this, then one JSON line per tool. */
export const TOOLS_PREAMBLE =
  "### Tools\n\nYou may call one or more functions to assist with the user query.\nYou are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n";

/** And closes with this: how the model must format its calls. */
export const TOOLS_POSTAMBLE =
  '</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>';

/** System-message flags: reasoning on / off, and "use my system message verbatim". */
export const THINK_FLAG = "/think";
export const NO_THINK_FLAG = "/no_think";
export const SYSTEM_OVERRIDE_FLAG = "/system_override";

/** Custom instructions used in think mode when the system message gives none. */
export const DEFAULT_INSTRUCTIONS_THINK =
  "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.";

/** Custom instructions used in no-think mode when the system message gives none. */
export const DEFAULT_INSTRUCTIONS_NO_THINK = "You are a helpful AI assistant named SmolLM, trained by Hugging Face.";

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
] as const;

/**
 * Formats a date as the template's `strftime_now("%d %B %Y")` does ("05 November
 * 2025"), in UTC rather than the host's zone so every gateway replica renders
 * the same prompt (and the same KV-cache prefix) at the same instant.
 */
export function formatTemplateDate(date: Date): string {
  const day = date.getUTCDate();
  return `${day < 10 ? "0" : ""}${day} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}`;
}
