import { randomBytes } from "node:crypto";
import { SmolLM3OutputParser, type OutputEvent, type ParsedToolCall, type ToolDefinition } from "@smollm/chat";
import { invalidModelOutput } from "./api-error.ts";
import type { ChatCompletionRequest } from "./chat-request.ts";
import { validateJsonSchema } from "./json-schema-validator.ts";
import type { FinishReason } from "./sse-frames.ts";

/** One piece of an answer, as both front ends stream it. */
export type OutputDelta =
  | { kind: "content"; text: string }
  | { kind: "reasoning"; text: string }
  /** A function call's piece: the first carries `id` and `name`, the next ones its arguments' text. */
  | { kind: "tool_call"; index: number; id?: string; name?: string; arguments: string };

/** A complete function call of the answer. */
export interface OutputToolCall {
  id: string;
  name: string;
  /** JSON text. */
  arguments: string;
}

/** What a caller needs of the request to read the answer. */
export type OutputRequest = Pick<ChatCompletionRequest, "tools" | "toolChoice" | "responseFormat">;

/** OpenAI-style call ids: `call_` and 24 hex digits. */
export function toolCallId(): string {
  return `call_${randomBytes(12).toString("hex")}`;
}

/**
 * Reads a completion's raw text (SmolLM3's special tokens included) into
 * what the client gets: reasoning apart from the answer, function calls as
 * OpenAI `tool_calls` with ids and indexes, checked against the tools the
 * request declared. Both the streaming and the whole-answer paths of both
 * front ends use it, so they agree on every byte.
 *
 * Structured output (`response_format` JSON) is taken as is: the grammar
 * made the whole output the JSON value, and tags inside its strings are data.
 */
export class CompletionOutput {
  readonly #tools: ReadonlyMap<string, ToolDefinition>;
  readonly #parser: SmolLM3OutputParser | undefined;
  readonly #newId: () => string;
  readonly #calls: OutputToolCall[] = [];
  /** Calls cut short by the end of generation: returned as they are, not checked. */
  #truncatedCalls = 0;
  #content = "";
  #reasoning = "";

  constructor(request: OutputRequest, newId: () => string = toolCallId) {
    this.#tools = new Map(request.tools.map((t) => [t.name, t]));
    this.#newId = newId;
    if (request.responseFormat.type === "text") {
      this.#parser = new SmolLM3OutputParser({ toolCalls: request.tools.length > 0 && request.toolChoice.type !== "none" });
    }
  }

  /**
   * Feeds generated text; returns the deltas it completes (possibly none:
   * the start of a tag is held back).
   * @throws ApiError (500 `invalid_model_output`) for a call to an unknown function or with invalid arguments.
   */
  push(text: string): OutputDelta[] {
    if (this.#parser === undefined) return this.#contentDelta(text);
    return this.#read(this.#parser.push(text));
  }

  /**
   * The generation ended for `reason`: releases held text and says how the
   * answer finished (`tool_calls` when it ended after complete calls).
   * @throws ApiError as {@link push} does, also for a call left malformed.
   */
  finish(reason: FinishReason): { deltas: OutputDelta[]; finishReason: FinishReason } {
    const deltas = this.#parser === undefined ? [] : this.#read(this.#parser.end());
    const finishReason = reason === "stop" && this.#calls.length > 0 && this.#truncatedCalls === 0 ? "tool_calls" : reason;
    return { deltas, finishReason };
  }

  /** The answer so far. */
  get content(): string {
    return this.#content;
  }

  get reasoning(): string {
    return this.#reasoning;
  }

  get toolCalls(): readonly OutputToolCall[] {
    return this.#calls;
  }

  #contentDelta(text: string): OutputDelta[] {
    if (text === "") return [];
    this.#content += text;
    return [{ kind: "content", text }];
  }

  #read(events: readonly OutputEvent[]): OutputDelta[] {
    const deltas: OutputDelta[] = [];
    for (const e of events) {
      switch (e.type) {
        case "content":
          this.#content += e.text;
          deltas.push({ kind: "content", text: e.text });
          break;
        case "reasoning":
          this.#reasoning += e.text;
          deltas.push({ kind: "reasoning", text: e.text });
          break;
        case "tool_call_begin": {
          // The name is checked as soon as it is known, before any argument is sent.
          this.#tool(e.name);
          const call: OutputToolCall = { id: this.#newId(), name: e.name, arguments: "" };
          this.#calls[e.index] = call;
          deltas.push({ kind: "tool_call", index: e.index, id: call.id, name: e.name, arguments: "" });
          break;
        }
        case "tool_call_arguments": {
          const call = this.#calls[e.index];
          if (call === undefined) break;
          call.arguments += e.text;
          deltas.push({ kind: "tool_call", index: e.index, arguments: e.text });
          break;
        }
        case "tool_call_end":
          this.#endCall(e.index, e.call);
          break;
      }
    }
    return deltas;
  }

  #endCall(index: number, parsed: ParsedToolCall): void {
    if (!parsed.ok) {
      if (parsed.truncated) {
        this.#truncatedCalls++;
        return;
      }
      throw invalidModelOutput(`The model produced a malformed function call: ${parsed.error}.`);
    }
    const tool = this.#tool(parsed.name);
    const call = this.#calls[index];
    if (call !== undefined) call.arguments = parsed.arguments;
    if (!isObject(parsed.value)) {
      throw invalidModelOutput(`The model called '${parsed.name}' with arguments that are not a JSON object.`);
    }
    const error = validateJsonSchema(tool.parameters ?? { type: "object" }, parsed.value);
    if (error !== undefined) {
      throw invalidModelOutput(`The model called '${parsed.name}' with arguments that do not match its parameters schema: ${error}.`);
    }
  }

  #tool(name: string): ToolDefinition {
    const tool = this.#tools.get(name);
    if (tool === undefined) throw invalidModelOutput(`The model called a function that was not offered: '${name}'.`);
    return tool;
  }
}

function isObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
