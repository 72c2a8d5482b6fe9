import type { ErrorObject } from "./http-errors.ts";

/** Why generation stopped, as OpenAI names it (`tool_calls`: the answer is function calls, decided by the gateway). */
export type FinishReason = "stop" | "length" | "tool_calls";

/** Token counts of a completion, as the worker reported them. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Ends an SSE stream the way OpenAI does. */
export const SSE_DONE = "data: [DONE]\n\n";

/**
 * The `data:` frames of one streamed chat completion, byte-compatible with
 * OpenAI's. Everything but the delta text is constant for a request, so the
 * text around it is built once and a content frame costs one JSON.stringify of
 * the text and one concatenation.
 */
export class SseFrames {
  /** `data: {"id":…,"object":"chat.completion.chunk",…,"choices":[` */
  readonly #head: string;
  /** `],"usage":null}\n\n` when usage was asked for (OpenAI sends `usage: null` on every other chunk then), else `]}\n\n`. */
  readonly #tail: string;
  readonly #contentHead: string;
  readonly #contentTail: string;
  /** The first frame: the assistant role with empty content. */
  readonly role: string;

  constructor(id: string, created: number, model: string, systemFingerprint: string, includeUsage: boolean) {
    this.#head =
      `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},` +
      `"model":${JSON.stringify(model)},"system_fingerprint":${JSON.stringify(systemFingerprint)},"choices":[`;
    this.#tail = includeUsage ? '],"usage":null}\n\n' : "]}\n\n";
    this.#contentHead = `${this.#head}{"index":0,"delta":{"content":`;
    this.#contentTail = `},"logprobs":null,"finish_reason":null}${this.#tail}`;
    this.role = `${this.#head}{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}${this.#tail}`;
  }

  /** A content delta frame. */
  content(text: string): string {
    return this.#contentHead + JSON.stringify(text) + this.#contentTail;
  }

  /**
   * A frame with any delta (reasoning, function-call pieces) and, when
   * asked for, the log-probabilities of the tokens it accounts for. Not the
   * hot path: plain content without logprobs goes through {@link content}.
   */
  delta(delta: Readonly<Record<string, unknown>>, logprobs?: readonly LogprobContent[]): string {
    const lp = logprobs === undefined ? "null" : JSON.stringify({ content: logprobs, refusal: null });
    return `${this.#head}{"index":0,"delta":${JSON.stringify(delta)},"logprobs":${lp},"finish_reason":null}${this.#tail}`;
  }

  /** The frame with an empty delta and the finish reason (and the last tokens' logprobs, if any are left). */
  finish(reason: FinishReason, logprobs?: readonly LogprobContent[]): string {
    const lp = logprobs === undefined || logprobs.length === 0 ? "null" : JSON.stringify({ content: logprobs, refusal: null });
    return `${this.#head}{"index":0,"delta":{},"logprobs":${lp},"finish_reason":"${reason}"}${this.#tail}`;
  }

  /** The `stream_options.include_usage` frame: no choices, the usage. */
  usage(usage: TokenUsage): string {
    return `${this.#head}],"usage":${JSON.stringify(usageObject(usage))}}\n\n`;
  }
}

/** One token of OpenAI's `logprobs.content`. */
export interface LogprobContent {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** An error event sent after the stream began: `data: {"error":{…}}`. */
export function sseErrorFrame(object: ErrorObject): string {
  return `data: ${JSON.stringify({ error: object })}\n\n`;
}

/** OpenAI's usage object, with the cached prompt tokens detail. */
export function usageObject(usage: TokenUsage): {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
} {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}
