import { THINK_END, THINK_START, TOOL_CALL_END, TOOL_CALL_START } from "./smollm3-template.ts";

/** A function call the parser read from the model's output. */
export type ParsedToolCall =
  | {
      ok: true;
      name: string;
      /** The arguments' JSON text as the model wrote it (what was streamed). */
      arguments: string;
      /** The arguments, parsed. */
      value: unknown;
    }
  | {
      ok: false;
      /** The name, when the model got that far. */
      name: string | undefined;
      /** The text between the tags. */
      raw: string;
      /** What is wrong with it, for an error message. */
      error: string;
      /** The output ended inside the call (max_tokens, a stop sequence). */
      truncated: boolean;
    };

/** What the model's output means, piece by piece, in order. */
export type OutputEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  /** A call started; its name is known. Its arguments follow in `tool_call_arguments` events. */
  | { type: "tool_call_begin"; index: number; name: string }
  | { type: "tool_call_arguments"; index: number; text: string }
  /** A call ended: `call` says whether it is well formed. Arguments events of the call concatenate to `call.arguments`. */
  | { type: "tool_call_end"; index: number; call: ParsedToolCall };

/** Options of {@link SmolLM3OutputParser}. */
export interface OutputParserOptions {
  /**
   * Read `<tool_call>` blocks as calls. Off when the request offered no tools
   * (or `tool_choice: none`): the model cannot call anything then, and such
   * text stays content.
   */
  toolCalls: boolean;
}

type State = "content" | "reasoning" | "call";

const THINK_TAGS = [THINK_START, THINK_END] as const;

/** `{"name": "…"` at the start of a call: the call can be announced. */
const CALL_NAME = /^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"/;
/** `, "arguments": ` right after the name, up to the arguments' first character: from there on they can stream. */
const CALL_ARGS = /^\s*,\s*"arguments"\s*:\s*(?=\S)/;

/**
 * Splits SmolLM3's raw output stream (special tokens rendered as text) into
 * reasoning, answer and function calls, incrementally:
 *
 * - `<think>…</think>` is reasoning, never content; the newlines the model puts
 *   inside the tags and after `</think>` are not part of either;
 * - `<tool_call>{"name": …, "arguments": …}</tool_call>` blocks are calls: the
 *   name is reported as soon as it is read, the arguments' JSON text as it is
 *   generated, and the whole call checked when the block closes;
 * - a suffix that may be the start of a tag is held back until the next piece
 *   decides, so no tag ever leaks into content or reasoning, whatever way the
 *   tokens split it.
 *
 * Only syntax is checked here; whether a call names a known function with
 * valid arguments is the caller's business (it knows the tools).
 */
export class SmolLM3OutputParser {
  readonly #contentTags: readonly string[];
  readonly #toolCallsOn: boolean;
  #state: State = "content";
  /** Text not yet classified (a possible tag start). */
  #buf = "";
  /** Drop whitespace before the next content (start of output, after a tag). */
  #skipContentWs = true;
  /** Trailing content whitespace held back (tool calls on): dropped if a call follows. */
  #heldContentWs = "";
  #reasoningStart = true;
  #heldReasoningWs = "";
  #calls = 0;
  /** The current call's text so far. */
  #callText = "";
  #callName: string | undefined;
  /** Where the name ends in #callText, once announced. */
  #nameEnd = -1;
  /** Offset of the arguments in #callText, once the header was read. */
  #argsStart = -1;
  /** The arguments are a JSON string (some models quote them): sent whole at the end. */
  #argsQuoted = false;
  #argsSent = 0;
  #ended = false;

  constructor(options: OutputParserOptions) {
    this.#toolCallsOn = options.toolCalls;
    this.#contentTags = options.toolCalls
      ? [THINK_START, THINK_END, TOOL_CALL_START, TOOL_CALL_END]
      : [THINK_START, THINK_END];
  }

  /** Calls seen so far (complete or not). */
  get toolCalls(): number {
    return this.#calls;
  }

  /** Feeds generated text; returns what it completes. */
  push(text: string): OutputEvent[] {
    if (this.#ended) throw new Error("parser already ended");
    const events: OutputEvent[] = [];
    if (text.length === 0) return events;
    this.#buf += text;
    this.#process(events, false);
    return events;
  }

  /** The output ended: releases held text; a call left open is reported (as truncated unless it parses). */
  end(): OutputEvent[] {
    if (this.#ended) return [];
    const events: OutputEvent[] = [];
    this.#process(events, true);
    if (this.#state === "call") this.#finishCall(events, true);
    if (this.#state === "reasoning") this.#reasoning(events, "", true);
    // Whitespace after the last call separates nothing; after an answer it is the model's.
    if (this.#heldContentWs !== "" && this.#calls === 0) events.push({ type: "content", text: this.#heldContentWs });
    this.#heldContentWs = "";
    this.#ended = true;
    return events;
  }

  #process(events: OutputEvent[], final: boolean): void {
    for (;;) {
      const buf = this.#buf;
      if (buf.length === 0) return;
      if (this.#state === "content") {
        const hit = firstTag(buf, this.#contentTags);
        if (hit === undefined) {
          const keep = final ? 0 : partialTagLength(buf, this.#contentTags);
          this.#content(events, buf.slice(0, buf.length - keep), false);
          this.#buf = buf.slice(buf.length - keep);
          return;
        }
        this.#content(events, buf.slice(0, hit.index), true);
        this.#buf = buf.slice(hit.index + hit.tag.length);
        if (hit.tag === THINK_START) {
          this.#state = "reasoning";
          this.#reasoningStart = true;
        } else if (hit.tag === TOOL_CALL_START) {
          this.#state = "call";
          this.#callText = "";
          this.#callName = undefined;
          this.#nameEnd = -1;
          this.#argsStart = -1;
          this.#argsQuoted = false;
          this.#argsSent = 0;
        } else {
          // A closing tag without its opening one: dropped, never shown as text.
          this.#skipContentWs = true;
        }
      } else if (this.#state === "reasoning") {
        const hit = firstTag(buf, THINK_TAGS);
        if (hit === undefined) {
          const keep = final ? 0 : partialTagLength(buf, THINK_TAGS);
          this.#reasoning(events, buf.slice(0, buf.length - keep), false);
          this.#buf = buf.slice(buf.length - keep);
          return;
        }
        this.#buf = buf.slice(hit.index + hit.tag.length);
        if (hit.tag === THINK_START) {
          // A nested opening tag means nothing more; it is dropped like every tag.
          this.#reasoning(events, buf.slice(0, hit.index), false);
          continue;
        }
        this.#reasoning(events, buf.slice(0, hit.index), true);
        this.#state = "content";
        this.#skipContentWs = true;
      } else {
        const at = buf.indexOf(TOOL_CALL_END);
        if (at === -1) {
          const keep = final ? 0 : partialTagLength(buf, [TOOL_CALL_END]);
          this.#callText += buf.slice(0, buf.length - keep);
          this.#buf = buf.slice(buf.length - keep);
          this.#progressCall(events);
          return;
        }
        this.#callText += buf.slice(0, at);
        this.#buf = buf.slice(at + TOOL_CALL_END.length);
        this.#finishCall(events, false);
        this.#state = "content";
        this.#skipContentWs = true;
      }
    }
  }

  #content(events: OutputEvent[], piece: string, beforeTag: boolean): void {
    let text = piece;
    if (this.#skipContentWs) {
      text = text.trimStart();
      if (text === "") return;
      this.#skipContentWs = false;
    }
    if (this.#toolCallsOn) {
      text = this.#heldContentWs + text;
      this.#heldContentWs = "";
      const trimmed = text.trimEnd();
      // Before a tag the whitespace only separated the answer from a call; otherwise it may yet be followed by text.
      if (!beforeTag) this.#heldContentWs = text.slice(trimmed.length);
      text = trimmed;
    }
    if (text !== "") events.push({ type: "content", text });
  }

  #reasoning(events: OutputEvent[], piece: string, closing: boolean): void {
    let text = piece;
    if (this.#reasoningStart) {
      text = text.trimStart();
      if (text === "") return;
      this.#reasoningStart = false;
    }
    text = this.#heldReasoningWs + text;
    this.#heldReasoningWs = "";
    const trimmed = text.trimEnd();
    if (!closing) this.#heldReasoningWs = text.slice(trimmed.length);
    if (trimmed !== "") events.push({ type: "reasoning", text: trimmed });
  }

  /** Streams what can be streamed of the open call: its name, then its arguments' text. */
  #progressCall(events: OutputEvent[]): void {
    const text = this.#callText;
    if (this.#nameEnd === -1) {
      const m = CALL_NAME.exec(text);
      if (m === null) return;
      const name = decodeJsonString(m[1] ?? "");
      if (name === undefined) return;
      this.#callName = name;
      this.#nameEnd = m[0].length;
      events.push({ type: "tool_call_begin", index: this.#calls, name });
    }
    if (this.#argsStart === -1) {
      const m = CALL_ARGS.exec(text.slice(this.#nameEnd));
      if (m === null) return;
      this.#argsStart = this.#nameEnd + m[0].length;
    }
    if (this.#argsQuoted) return;
    const args = text.slice(this.#argsStart);
    if (args.length === 0) return;
    if (this.#argsSent === 0 && args.charCodeAt(0) === 0x22 /* " */) {
      this.#argsQuoted = true;
      return;
    }
    // Hold back a trailing `}` and whitespace: it may be the end of the call object, not of the arguments.
    const upTo = args.length - closingTailLength(args);
    if (upTo > this.#argsSent) {
      events.push({ type: "tool_call_arguments", index: this.#calls, text: args.slice(this.#argsSent, upTo) });
      this.#argsSent = upTo;
    }
  }

  #finishCall(events: OutputEvent[], truncated: boolean): void {
    if (!truncated) this.#progressCall(events);
    const index = this.#calls++;
    const raw = this.#callText;
    this.#callText = "";
    this.#state = "content";
    let parsed: unknown;
    let parseError: string | undefined;
    try {
      parsed = JSON.parse(raw);
    } catch (error: unknown) {
      parseError = error instanceof Error ? error.message : String(error);
    }
    const fail = (error: string, isTruncated: boolean): void => {
      events.push({ type: "tool_call_end", index, call: { ok: false, name: this.#callName, raw, error, truncated: isTruncated } });
    };
    if (parseError !== undefined) {
      // An output that stops inside a call is truncated; a closed call that is not JSON is malformed.
      fail(`the call is not valid JSON (${parseError})`, truncated);
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      fail('the call is not a JSON object {"name": …, "arguments": …}', false);
      return;
    }
    const obj = parsed as Record<string, unknown>;
    const name = obj["name"];
    if (typeof name !== "string") {
      fail('the call has no string "name"', false);
      return;
    }
    if (this.#callName !== undefined && this.#callName !== name) {
      fail("the call names two functions", false);
      return;
    }
    const value = obj["arguments"] ?? {};
    let args: string;
    if (this.#argsStart !== -1 && !this.#argsQuoted) {
      // What was streamed plus the rest: the arguments' own text, without the call object's `}`.
      const region = raw.slice(this.#argsStart);
      const end = region.trimEnd();
      const candidate = end.endsWith("}") ? end.slice(0, -1).trimEnd() : end;
      args = isJson(candidate) ? candidate : JSON.stringify(value);
    } else if (typeof value === "string") {
      args = value;
    } else {
      args = JSON.stringify(value);
    }
    let argsValue: unknown = value;
    if (typeof value === "string") {
      try {
        argsValue = JSON.parse(value);
      } catch {
        fail("the arguments are a string that is not JSON", false);
        return;
      }
    }
    if (this.#nameEnd === -1) events.push({ type: "tool_call_begin", index, name });
    const rest = this.#argsStart !== -1 && !this.#argsQuoted ? args.slice(this.#argsSent) : args;
    if (rest !== "") events.push({ type: "tool_call_arguments", index, text: rest });
    events.push({ type: "tool_call_end", index, call: { ok: true, name, arguments: args, value: argsValue } });
  }
}

/** The earliest tag in `text`. */
function firstTag(text: string, tags: readonly string[]): { index: number; tag: string } | undefined {
  // Every tag starts with "<": scan for that first, so plain text costs one indexOf.
  for (let from = text.indexOf("<"); from !== -1; from = text.indexOf("<", from + 1)) {
    for (const tag of tags) if (text.startsWith(tag, from)) return { index: from, tag };
  }
  return undefined;
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `tags`. */
function partialTagLength(text: string, tags: readonly string[]): number {
  const lt = text.lastIndexOf("<");
  if (lt === -1) return 0;
  const tail = text.slice(lt);
  for (const tag of tags) if (tail.length < tag.length && tag.startsWith(tail)) return tail.length;
  return 0;
}

/** Length of the trailing `\s*}?\s*` of `text`. */
function closingTailLength(text: string): number {
  let i = text.length;
  while (i > 0 && isSpace(text.charCodeAt(i - 1))) i--;
  if (i > 0 && text.charCodeAt(i - 1) === 0x7d /* } */) {
    i--;
    while (i > 0 && isSpace(text.charCodeAt(i - 1))) i--;
  }
  return text.length - i;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function decodeJsonString(body: string): string | undefined {
  try {
    return JSON.parse(`"${body}"`) as string;
  } catch {
    return undefined;
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
