/** Roles a chat message may have; `tool` results are rendered as user turns (SmolLM3's template does). */
export type ChatRole = "system" | "user" | "assistant" | "tool";

/**
 * One message of a conversation, already normalized: text parts of an array
 * content are joined, and `null` assistant content is the empty string.
 *
 * Extension point: tool calling (a later issue) adds `toolCalls` on assistant
 * messages; `toolCallId` / `name` are kept now so tool results can be paired.
 */
export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** The OpenAI `name` field (participant name); not rendered by SmolLM3's template. */
  name?: string;
  /** For `tool` messages: the call this result answers. Not rendered yet. */
  toolCallId?: string;
}

/** Whether the model reasons in a `<think>` block before answering. */
export type ReasoningMode = "think" | "no_think";
