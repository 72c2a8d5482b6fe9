import {
  RequestParamError,
  describeJsonType,
  invalidEnumValue,
  invalidType,
  invalidValue,
  missingParam,
  parseChatMessages,
  parseToolChoice,
  parseTools,
  type ChatMessage,
  type ToolChoice,
  type ToolDefinition,
} from "@smollm/chat";
import type { GenerationConstraint } from "./generation.ts";
import { parseResponseFormat, type ResponseFormat } from "./response-format.ts";
import { toolCallConstraint } from "./tool-call-constraint.ts";

/** A validated OpenAI chat completion request; `undefined` means "not given, use the default". */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  /** `max_completion_tokens`, else `max_tokens`. */
  maxTokens: number | undefined;
  temperature: number | undefined;
  topP: number | undefined;
  /** 0 disables top-k (so does vLLM's -1, normalized to 0). */
  topK: number | undefined;
  minP: number | undefined;
  /** Reduced to uint32, as the worker takes it. */
  seed: number | undefined;
  presencePenalty: number | undefined;
  frequencyPenalty: number | undefined;
  stop: string[];
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  user: string | undefined;
  /**
   * Reasoning on or off: `enable_thinking` or `chat_template_kwargs.enable_thinking`
   * (vLLM, llama-server), else `reasoning_effort` (`none` = off); undefined
   * leaves it to the system prompt's `/think` or `/no_think` (default on).
   */
  enableThinking: boolean | undefined;
  /** `tools` (functions only) and `tool_choice` (default `auto` with tools, else `none`). */
  tools: ToolDefinition[];
  toolChoice: ToolChoice;
  /** `parallel_tool_calls` (default true): more than one call per turn. */
  parallelToolCalls: boolean;
  responseFormat: ResponseFormat;
  /**
   * Constrained decoding: the JSON of `response_format`, or the call that
   * `tool_choice: required` or a named function forces; undefined when the
   * model writes freely.
   */
  constraint: GenerationConstraint | undefined;
  /** With `logprobs: true`: `top_logprobs` (0 when not given); undefined without logprobs. */
  topLogprobs: number | undefined;
  /** Extension (vLLM, llama-server): keep generating through end-of-generation tokens; for benchmarks. */
  ignoreEos: boolean;
  /** Extension `exact_prefill`: never prefill a long prompt block-parallel (an approximation); docs/parallel-prefill.md. */
  exactPrefill?: boolean;
}

const MAX_STOP_SEQUENCES = 4;
const MAX_TOP_LOGPROBS = 20;
/** OpenAI's values; SmolLM3 reasons or not, so every value but `none` means on. */
const REASONING_EFFORTS = ["none", "minimal", "low", "medium", "high"] as const;
const UINT32_MAX = 0xffff_ffff;

type Body = Readonly<Record<string, unknown>>;

/**
 * Validates a parsed JSON body as an OpenAI chat completion request. Unknown
 * fields are ignored and `null` counts as absent, as OpenAI does. Whether the
 * model exists is the caller's business (a 404, not a 400).
 *
 * @throws RequestParamError (an InvalidRequestError) with OpenAI's message, `param` and `code`; nothing else.
 */
export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RequestParamError(
      `Invalid request body: expected a JSON object, but got ${describeJsonType(body)} instead.`,
      undefined,
      "invalid_type",
    );
  }
  const b = body as Body;
  const model = b["model"];
  if (model === undefined || model === null) throw missingParam("model");
  if (typeof model !== "string") throw invalidType("model", "a string", model);
  const messages = parseChatMessages(b["messages"]);

  const n = optionalInteger(b, "n", { min: 1 });
  if (n !== undefined && n !== 1) {
    throw invalidValue("n", `only n=1 is supported by this server, but got ${n}.`, "unsupported_value");
  }
  const maxTokens = optionalInteger(b, "max_tokens", { min: 1, max: UINT32_MAX });
  const maxCompletionTokens = optionalInteger(b, "max_completion_tokens", { min: 1, max: UINT32_MAX });
  const topK = optionalInteger(b, "top_k", { min: -1, max: UINT32_MAX });
  const seed = optionalInteger(b, "seed", {});

  const streamOptions = optionalObject(b, "stream_options");
  const chatTemplateKwargs = optionalObject(b, "chat_template_kwargs");
  const reasoningEffort = optionalString(b, "reasoning_effort");
  if (reasoningEffort !== undefined && !(REASONING_EFFORTS as readonly string[]).includes(reasoningEffort)) {
    throw invalidEnumValue("reasoning_effort", reasoningEffort, REASONING_EFFORTS);
  }
  const enableThinking =
    optionalBoolean(b, "enable_thinking", "enable_thinking") ??
    (chatTemplateKwargs && optionalBoolean(chatTemplateKwargs, "enable_thinking", "chat_template_kwargs.enable_thinking")) ??
    (reasoningEffort === undefined ? undefined : reasoningEffort !== "none");

  const tools = parseTools(b["tools"]);
  const toolChoice = parseToolChoice(b["tool_choice"], tools);
  const parallelToolCalls = optionalBoolean(b, "parallel_tool_calls", "parallel_tool_calls") ?? true;
  const responseFormat = parseResponseFormat(b["response_format"]);
  const forcedCall = toolCallConstraint(tools, toolChoice, parallelToolCalls);
  if (forcedCall !== undefined && responseFormat.type !== "text") {
    throw invalidValue(
      "response_format",
      "a JSON response format cannot be combined with a tool_choice that forces a function call: the output is either the call or the JSON.",
    );
  }
  const constraint =
    forcedCall ??
    (responseFormat.type === "text"
      ? undefined
      : { jsonSchema: JSON.stringify(responseFormat.grammarSchema), prefix: "", suffix: "", maxValues: 0 });

  const logprobs = optionalBoolean(b, "logprobs", "logprobs") ?? false;
  const topLogprobs = optionalInteger(b, "top_logprobs", { min: 0, max: MAX_TOP_LOGPROBS });
  if (topLogprobs !== undefined && !logprobs) {
    throw invalidValue("top_logprobs", "'logprobs' must be set to true when 'top_logprobs' is given.");
  }

  return {
    model,
    messages,
    maxTokens: maxCompletionTokens ?? maxTokens,
    temperature: optionalNumber(b, "temperature", { min: 0, max: 2 }),
    topP: optionalNumber(b, "top_p", { min: 0, max: 1, minExclusive: true }),
    topK: topK === -1 ? 0 : topK,
    minP: optionalNumber(b, "min_p", { min: 0, max: 1 }),
    // The worker takes a uint32; any int64 OpenAI accepts still picks a fixed seed.
    seed: seed === undefined ? undefined : seed >>> 0,
    presencePenalty: optionalNumber(b, "presence_penalty", { min: -2, max: 2 }),
    frequencyPenalty: optionalNumber(b, "frequency_penalty", { min: -2, max: 2 }),
    stop: parseStop(b["stop"]),
    stream: optionalBoolean(b, "stream", "stream") ?? false,
    includeUsage: (streamOptions && optionalBoolean(streamOptions, "include_usage", "stream_options.include_usage")) ?? false,
    user: optionalString(b, "user"),
    enableThinking,
    ignoreEos: optionalBoolean(b, "ignore_eos", "ignore_eos") ?? false,
    tools,
    toolChoice,
    parallelToolCalls,
    responseFormat,
    constraint,
    topLogprobs: logprobs ? (topLogprobs ?? 0) : undefined,
    // Only present when asked for, so requests without the extension look as before.
    ...(optionalBoolean(b, "exact_prefill", "exact_prefill") === true ? { exactPrefill: true } : {}),
  };
}

interface Bounds {
  min?: number;
  max?: number;
  minExclusive?: boolean;
}

function optionalNumber(b: Body, key: string, bounds: Bounds): number | undefined {
  const value = b[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number") throw invalidType(key, "a decimal", value);
  checkBounds(key, value, bounds, "decimal");
  return value;
}

function optionalInteger(b: Body, key: string, bounds: Bounds): number | undefined {
  const value = b[key];
  if (value === undefined || value === null) return undefined;
  // JSON has no integer type: 3.0 arrives as 3 and is fine; 3.5 and 1e300 are not.
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalidType(key, "an integer", value);
  checkBounds(key, value, bounds, "integer");
  return value;
}

function checkBounds(key: string, value: number, bounds: Bounds, kind: "decimal" | "integer"): void {
  if (bounds.min !== undefined && (bounds.minExclusive ? value <= bounds.min : value < bounds.min)) {
    throw invalidValue(
      key,
      `${kind} below minimum value. Expected a value ${bounds.minExclusive ? ">" : ">="} ${bounds.min}, but got ${value} instead.`,
      `${kind}_below_min_value`,
    );
  }
  if (bounds.max !== undefined && value > bounds.max) {
    throw invalidValue(
      key,
      `${kind} above maximum value. Expected a value <= ${bounds.max}, but got ${value} instead.`,
      `${kind}_above_max_value`,
    );
  }
}

function optionalBoolean(b: Body, key: string, param: string): boolean | undefined {
  const value = b[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw invalidType(param, "a boolean", value);
  return value;
}

function optionalString(b: Body, key: string): string | undefined {
  const value = b[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidType(key, "a string", value);
  return value;
}

function optionalObject(b: Body, key: string): Body | undefined {
  const value = b[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw invalidType(key, "an object", value);
  return value as Body;
}

function parseStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") {
    checkStopString("stop", value);
    return [value];
  }
  if (!Array.isArray(value)) throw invalidType("stop", "one of a string or array of strings", value);
  if (value.length > MAX_STOP_SEQUENCES) {
    throw invalidValue(
      "stop",
      `array too long. Expected an array with maximum length ${MAX_STOP_SEQUENCES}, but got an array with length ${value.length} instead.`,
      "array_above_max_length",
    );
  }
  const stop: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== "string") throw invalidType(`stop[${i}]`, "a string", item);
    checkStopString(`stop[${i}]`, item);
    stop.push(item);
  }
  return stop;
}

// An empty stop sequence would match at once and end every completion empty.
function checkStopString(param: string, value: string): void {
  if (value.length === 0) {
    throw invalidValue(
      param,
      "string too short. Expected a string with minimum length 1, but got an empty string instead.",
      "string_below_min_length",
    );
  }
}
