/** Roles a chat message may have; `tool` results are rendered as user turns (SmolLM3's template does). */
export type ChatRole = "system" | "user" | "assistant" | "tool";

/** A function call an assistant turn made (OpenAI `tool_calls[i]`). */
export interface ChatToolCall {
  id: string;
  name: string;
  /** The arguments as JSON text, as OpenAI carries them. */
  arguments: string;
}

/**
 * One message of a conversation, already normalized: text parts of an array
 * content are joined, and `null` assistant content is the empty string.
 */
export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** The OpenAI `name` field (participant name); not rendered by SmolLM3's template. */
  name?: string;
  /** For `tool` messages: the call this result answers (not rendered: SmolLM3 pairs results by order). */
  toolCallId?: string;
  /** For `assistant` messages: the calls it made, rendered back as `<tool_call>` blocks. */
  toolCalls?: ChatToolCall[];
}

/** Whether the model reasons in a `<think>` block before answering. */
export type ReasoningMode = "think" | "no_think";
