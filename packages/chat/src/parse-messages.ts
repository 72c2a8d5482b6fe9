import type { ChatMessage, ChatRole, ChatToolCall } from "./messages.ts";
import { invalidEnumValue, invalidType, invalidValue, missingParam } from "./param-errors.ts";

// `developer` is OpenAI's newer name for `system` (sent by current SDKs for some
// models); accepting it costs nothing and it means the same to SmolLM3.
const ROLES: Readonly<Record<string, ChatRole>> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
};
const SUPPORTED_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;

/**
 * Separator between the text parts of an array `content`. vLLM joins them with
 * a newline too; without one, adjacent parts would run words together.
 */
const PART_SEPARATOR = "\n";

/**
 * Validates an OpenAI `messages` array (from untrusted JSON) and normalizes it
 * to {@link ChatMessage}s. Content is a string or an array of `{type: "text",
 * text}` parts; assistant content may be `null` (a turn that only called tools).
 * Unknown fields are ignored.
 *
 * @param param the field's path in the request, used in error `param`s.
 * @throws RequestParamError (an InvalidRequestError) naming the faulty field, e.g. `messages[2].role`.
 */
export function parseChatMessages(value: unknown, param = "messages"): ChatMessage[] {
  if (value === undefined || value === null) throw missingParam(param);
  if (!Array.isArray(value)) throw invalidType(param, "an array", value);
  if (value.length === 0) {
    throw invalidValue(
      param,
      "empty array. Expected an array with minimum length 1, but got an empty array instead.",
      "empty_array",
    );
  }
  const messages: ChatMessage[] = new Array<ChatMessage>(value.length);
  for (let i = 0; i < value.length; i++) messages[i] = parseMessage(value[i], `${param}[${i}]`);
  return messages;
}

function parseMessage(value: unknown, path: string): ChatMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidType(path, "an object", value);
  const record = value as Record<string, unknown>;

  const rawRole = record["role"];
  if (rawRole === undefined || rawRole === null) throw missingParam(`${path}.role`);
  if (typeof rawRole !== "string") throw invalidType(`${path}.role`, "a string", rawRole);
  const role = Object.hasOwn(ROLES, rawRole) ? ROLES[rawRole] : undefined;
  if (role === undefined) throw invalidEnumValue(`${path}.role`, rawRole, SUPPORTED_ROLES);

  const message: ChatMessage = { role, content: parseContent(record["content"], role, `${path}.content`) };

  const name = record["name"];
  if (name !== undefined && name !== null) {
    if (typeof name !== "string") throw invalidType(`${path}.name`, "a string", name);
    message.name = name;
  }
  const toolCallId = record["tool_call_id"];
  if (toolCallId !== undefined && toolCallId !== null) {
    if (typeof toolCallId !== "string") throw invalidType(`${path}.tool_call_id`, "a string", toolCallId);
    message.toolCallId = toolCallId;
  }
  if (role === "assistant") {
    const toolCalls = parseToolCalls(record["tool_calls"], `${path}.tool_calls`);
    if (toolCalls.length > 0) message.toolCalls = toolCalls;
  }
  return message;
}

/** An assistant turn's `tool_calls`: `[{id, type: "function", function: {name, arguments}}]`. */
function parseToolCalls(value: unknown, path: string): ChatToolCall[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidType(path, "an array", value);
  const calls: ChatToolCall[] = [];
  for (let i = 0; i < value.length; i++) {
    const callPath = `${path}[${i}]`;
    const call: unknown = value[i];
    if (typeof call !== "object" || call === null || Array.isArray(call)) throw invalidType(callPath, "an object", call);
    const c = call as Record<string, unknown>;
    const id = c["id"];
    if (id === undefined || id === null) throw missingParam(`${callPath}.id`);
    if (typeof id !== "string") throw invalidType(`${callPath}.id`, "a string", id);
    const type = c["type"];
    if (type !== undefined && type !== null && type !== "function") {
      if (typeof type !== "string") throw invalidType(`${callPath}.type`, "a string", type);
      throw invalidEnumValue(`${callPath}.type`, type, ["function"]);
    }
    const fn = c["function"];
    if (fn === undefined || fn === null) throw missingParam(`${callPath}.function`);
    if (typeof fn !== "object" || Array.isArray(fn)) throw invalidType(`${callPath}.function`, "an object", fn);
    const f = fn as Record<string, unknown>;
    const name = f["name"];
    if (name === undefined || name === null) throw missingParam(`${callPath}.function.name`);
    if (typeof name !== "string") throw invalidType(`${callPath}.function.name`, "a string", name);
    const args = f["arguments"];
    if (args === undefined || args === null) throw missingParam(`${callPath}.function.arguments`);
    if (typeof args !== "string") throw invalidType(`${callPath}.function.arguments`, "a string", args);
    calls.push({ id, name, arguments: args });
  }
  return calls;
}

function parseContent(value: unknown, role: ChatRole, path: string): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) {
    // OpenAI allows an assistant turn without content (it carried tool calls).
    if (role === "assistant") return "";
    throw missingParam(path);
  }
  if (!Array.isArray(value)) throw invalidType(path, "one of a string or array of objects", value);
  let text = "";
  for (let j = 0; j < value.length; j++) {
    const partPath = `${path}[${j}]`;
    const part: unknown = value[j];
    if (typeof part !== "object" || part === null || Array.isArray(part)) throw invalidType(partPath, "an object", part);
    const record = part as Record<string, unknown>;
    const type = record["type"];
    if (type === undefined || type === null) throw missingParam(`${partPath}.type`);
    if (typeof type !== "string") throw invalidType(`${partPath}.type`, "a string", type);
    // Images, audio and files need a multimodal model; SmolLM3 reads text only.
    if (type !== "text") throw invalidEnumValue(`${partPath}.type`, type, ["text"]);
    const partText = record["text"];
    if (partText === undefined || partText === null) throw missingParam(`${partPath}.text`);
    if (typeof partText !== "string") throw invalidType(`${partPath}.text`, "a string", partText);
    text = j === 0 ? partText : text + PART_SEPARATOR + partText;
  }
  return text;
}
