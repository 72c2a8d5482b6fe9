export type { ChatMessage, ChatRole, ReasoningMode } from "./messages.ts";
export { parseChatMessages } from "./parse-messages.ts";
export { renderChatPrompt, resolveReasoningMode, type RenderChatPromptOptions } from "./render-prompt.ts";
export {
  DEFAULT_INSTRUCTIONS_NO_THINK,
  DEFAULT_INSTRUCTIONS_THINK,
  EMPTY_THINK_BLOCK,
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
