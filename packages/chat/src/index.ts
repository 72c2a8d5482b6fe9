export type { ChatMessage, ChatRole, ChatToolCall, ReasoningMode } from "./messages.ts";
export type { ToolChoice, ToolDefinition } from "./tools.ts";
export { parseChatMessages } from "./parse-messages.ts";
export { parseToolChoice, parseTools } from "./parse-tools.ts";
export { renderChatPrompt, renderToolCall, resolveReasoningMode, type RenderChatPromptOptions } from "./render-prompt.ts";
export {
  SmolLM3OutputParser,
  type OutputEvent,
  type OutputParserOptions,
  type ParsedToolCall,
} from "./output-parser.ts";
export {
  DEFAULT_INSTRUCTIONS_NO_THINK,
  DEFAULT_INSTRUCTIONS_THINK,
  EMPTY_THINK_BLOCK,
  TOOL_CALL_END,
  TOOL_CALL_START,
  formatTemplateDate,
} from "./smollm3-template.ts";
export {
  RequestParamError,
  describeJsonType,
  invalidEnumValue,
  invalidType,
  invalidValue,
  missingParam,
} from "./param-errors.ts";
