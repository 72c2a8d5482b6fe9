import { randomInt } from "node:crypto";
import {
  LlamaGrammarEvaluationState,
  type LlamaContextSequence,
  type LlamaContextSequenceRepeatPenalty,
  type LlamaGrammar,
  type SequenceEvaluateOptions,
  type Token,
} from "node-llama-cpp";
import type { Logger } from "pino";
import {
  CancelledError,
  ClusterError,
  ContextLengthError,
  InvalidRequestError,
  UnavailableError,
  toClusterError,
} from "@smollm/common";
import { GrammarCache } from "./grammar.ts";
import type { LoadedModel } from "./model-loader.ts";
import type { WorkerLoad, WorkerMetrics } from "./metrics.ts";
import { SlotPool, type Slot } from "./slot-pool.ts";
import { StopMatcher } from "./stop-matcher.ts";
import { exclusive, gateOf, passGate } from "./context-gate.ts";
import { TokenTextStream } from "./utf8-stream.ts";

/** Sampling parameters; zero values mean "off" as in the proto (temperature 0 = greedy). */
export interface SamplingOptions {
  /** 0 = greedy. */
  temperature?: number;
  /** 0 or 1 = off. */
  topP?: number;
  /** 0 = off. */
  topK?: number;
  /** 0 = off. */
  minP?: number;
  /** Random per request when absent. */
  seed?: number | undefined;
  /** OpenAI-style, -2..2; 0 = off. */
  presencePenalty?: number;
  /** OpenAI-style, -2..2; 0 = off. */
  frequencyPenalty?: number;
  /** llama.cpp-style multiplicative penalty; 0 or 1 = off. */
  repeatPenalty?: number;
}

/** One generation request, already tokenized. */
export interface GenerateParams {
  requestId?: string;
  promptTokens: readonly number[];
  /** Most tokens to sample; 0 = until the slot's context is full. */
  maxTokens: number;
  /** Generation stops before any of these; they are never emitted. */
  stop?: readonly string[];
  sampling?: SamplingOptions;
  /** Keep generating through end-of-generation tokens (they are emitted as their text). */
  ignoreEos?: boolean;
  /** Overrides the engine's `streamIntervalMs` for this generation. */
  streamIntervalMs?: number;
  /** GBNF grammar the output must satisfy; exclusive with `jsonSchema`. */
  grammar?: string;
  /** JSON schema (JSON text, node-llama-cpp's GBNF-JSON subset) the output must satisfy. */
  jsonSchema?: string;
  /** Literal text around each JSON value (e.g. `<tool_call>\n` … `\n</tool_call>`); only with `jsonSchema`. */
  jsonPrefix?: string;
  jsonSuffix?: string;
  /** 0 or 1: exactly one framed JSON value; n > 1: one to n, separated by "\n". */
  jsonMaxValues?: number;
  /** Report each sampled token's log-probability… */
  logprobs?: boolean;
  /** …and this many most likely alternatives (0..20). */
  topLogprobs?: number;
}

/** A token's log-probability in the distribution it was sampled from (after sampling settings and grammar). */
export interface TokenLogprobInfo {
  /** The token's text; bytes of a split character show as U+FFFD. */
  token: string;
  logprob: number;
  bytes: Uint8Array;
}

/** A sampled token's log-probability and the most likely alternatives (most likely first). */
export interface SampledTokenLogprob extends TokenLogprobInfo {
  top: TokenLogprobInfo[];
}

export type FinishReasonName = "stop" | "length" | "cancelled";

export interface GenerationStartedEvent {
  type: "started";
  slot: number;
  cachedTokens: number;
  promptTokens: number;
  queueMs: number;
}

export interface TextDeltaEvent {
  type: "delta";
  /** Complete UTF-8 text only. */
  text: string;
  /** Sampled tokens this delta accounts for (several when the consumer lagged and deltas were coalesced). */
  tokens: number;
  /** With `logprobs`: one entry per sampled token (end-of-generation tokens excluded). */
  logprobs?: SampledTokenLogprob[];
}

export interface GenerationFinishedEvent {
  type: "finished";
  reason: FinishReasonName;
  promptTokens: number;
  /** Every sampled token, an end-of-generation token included. */
  completionTokens: number;
  cachedTokens: number;
  prefillMs: number;
  decodeMs: number;
}

export type GenerationEvent = GenerationStartedEvent | TextDeltaEvent | GenerationFinishedEvent;

/** Work a generation does in its slot before the prompt is evaluated (KV transfer, see kv-import.ts). */
export interface GenerateHooks {
  /**
   * Runs once the slot is held, before its cached prefix is compared with the
   * prompt: may load KV into the sequence. Resolves to how many prompt tokens
   * it had computed (not counted as cached); its time counts as prefill.
   */
  prepare?: (sequence: LlamaContextSequence, signal: AbortSignal) => Promise<number>;
}

/** Options of {@link Engine}. */
export interface EngineOptions {
  loaded: LoadedModel;
  metrics: WorkerMetrics;
  logger: Logger;
  maxQueue: number;
  queueTimeoutMs: number;
  /**
   * Least time between two deltas of one stream; 0 sends each token's text
   * at once. Tokens sampled meanwhile are coalesced into the next delta, which
   * cuts per-message work (protobuf, HTTP/2, the gateway's SSE) when tokens
   * come faster than anyone reads them. The first delta and the end are never delayed.
   */
  streamIntervalMs?: number;
  /**
   * Told which tokens a slot's KV holds: its prompt when a generation starts
   * (being computed), its whole sequence when it ends. Feeds the cluster's
   * prefix-cache index; must be cheap and must not throw.
   */
  onSlotTokens?: (slot: number, tokens: readonly number[]) => void;
}

/** A validated request with every default filled in. */
type CheckedParams = Required<
  Omit<
    GenerateParams,
    "requestId" | "sampling" | "grammar" | "jsonSchema" | "jsonPrefix" | "jsonSuffix" | "jsonMaxValues" | "streamIntervalMs"
  >
> & {
  requestId: string;
  sampling: SamplingOptions;
  /** The compiled constraint (set after the synchronous checks). */
  grammar: LlamaGrammar | undefined;
};

/** OpenAI's limit on alternatives per token. */
const MAX_TOP_LOGPROBS = 20;
/** Stands for the log of a zero probability, which JSON cannot carry (OpenAI's convention). */
const LOGPROB_FLOOR = -9999;

/** Tokens the repeat penalties look back over (llama.cpp's penalty_last_n default). */
const PENALTY_LAST_N = 64;

/**
 * Wakes consumers together, one event-loop turn after the current burst of tokens.
 *
 * Why deferred: when a decode batch completes, every slot's producer takes its
 * token and asks for the next one, and node-llama-cpp dispatches the next
 * decode from those calls: at once when every slot is queued, else from a
 * `setImmediate` registered a few microtasks later. Waking consumers at once
 * would put their work (protobuf encoding, HTTP/2 writes) between the token
 * and the next decode, adding it to every step (measured: about a third of
 * single-stream gRPC throughput). Two `setImmediate` hops land after that
 * dispatch, so the consumers' work runs while llama.cpp decodes on its own
 * thread. A lagging consumer also gets several tokens per wake-up.
 */
class WakeScheduler {
  #pending: (() => void)[] = [];
  #scheduled = false;

  wake(resolve: () => void): void {
    this.#pending.push(resolve);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#hop);
  }

  readonly #hop = (): void => {
    setImmediate(this.#flush);
  };

  readonly #flush = (): void => {
    this.#scheduled = false;
    const pending = this.#pending;
    this.#pending = [];
    for (const resolve of pending) resolve();
  };
}

/**
 * What a generation's producer hands to its consumer. Text accumulates until
 * the consumer takes it, so a consumer slower than decoding (a busy gRPC
 * stream) gets fewer, larger deltas instead of a growing queue of tiny ones.
 */
class Outbox {
  started: GenerationStartedEvent | undefined;
  text = "";
  tokens = 0;
  /** Log-probabilities of the tokens in `tokens`, when asked for. */
  logprobs: SampledTokenLogprob[] = [];
  finished: GenerationFinishedEvent | undefined;
  error: ClusterError | undefined;
  readonly #scheduler: WakeScheduler;
  #wake: (() => void) | undefined;
  /** The consumer is pacing deltas: only started/finished/error wake it before its timer. */
  #pacing = false;

  constructor(scheduler: WakeScheduler) {
    this.#scheduler = scheduler;
  }

  /** Adds sampled tokens; wakes the consumer only when there is text to send. */
  append(text: string, tokens: number): void {
    this.tokens += tokens;
    if (text.length === 0) return;
    this.text += text;
    if (!this.#pacing) this.notify();
  }

  /** Wakes the consumer (after the current burst of tokens, see WakeScheduler). */
  notify(): void {
    const wake = this.#wake;
    if (wake !== undefined) {
      this.#wake = undefined;
      this.#scheduler.wake(wake);
    }
  }

  /** Resolves when something new may be there. */
  wait(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  /** Resolves after `ms`, or earlier when the generation ends or fails. */
  pace(ms: number): Promise<void> {
    this.#pacing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        done();
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        this.#pacing = false;
        resolve();
      };
      this.#wake = done;
    });
  }
}

/**
 * Continuous batching over one llama.cpp context: each generation holds one
 * sequence (slot) and runs `sequence.evaluate`; node-llama-cpp puts the
 * pending tokens of all sequences into one decode per step, so generations
 * join and leave at token boundaries.
 */
export class Engine {
  readonly #loaded: LoadedModel;
  readonly #metrics: WorkerMetrics;
  readonly #logger: Logger;
  readonly #pool: SlotPool;
  readonly #running = new Set<Promise<void>>();
  readonly #aborts = new Set<AbortController>();
  readonly #wakes = new WakeScheduler();
  readonly #grammars: GrammarCache;
  /** Text of token ids for logprobs (lossy: a token may end mid-character). */
  readonly #tokenText = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  readonly #onSlotTokens: (slot: number, tokens: readonly number[]) => void;
  readonly #streamIntervalMs: number;
  #draining = false;
  #closing: Promise<void> | undefined;

  constructor(options: EngineOptions) {
    this.#loaded = options.loaded;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#onSlotTokens = options.onSlotTokens ?? (() => {});
    this.#streamIntervalMs = options.streamIntervalMs ?? 0;
    this.#grammars = new GrammarCache(options.loaded.llama);
    const { context } = options.loaded;
    const sequences = Array.from({ length: context.totalSequences }, () =>
      context.getSequence({
        // Never shift the context silently: requests are checked to fit, and a
        // shift would drop prompt tokens the client believes are there.
        contextShift: {
          strategy: () => {
            throw new ContextLengthError("slot context is full");
          },
        },
      }),
    );
    this.#pool = new SlotPool(sequences, { maxQueue: options.maxQueue, queueTimeoutMs: options.queueTimeoutMs });
    this.#metrics.setLoadSource(() => this.load);
  }

  get slots(): number {
    return this.#pool.size;
  }

  /** Tokens one slot holds (prompt + completion). */
  get contextSize(): number {
    return this.#loaded.contextSize;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get load(): WorkerLoad {
    let kvCellsUsed = 0;
    for (const slot of this.#pool.slots) kvCellsUsed += slot.sequence.nextTokenIndex;
    return { activeSlots: this.#pool.active, queued: this.#pool.queued, kvCellsUsed };
  }

  /** KV cells not held by active generations, over all slots (cached tokens of idle slots count as free). */
  get freeKvTokens(): number {
    let free = 0;
    for (const slot of this.#pool.slots) {
      free += this.#pool.isBusy(slot.index) ? Math.max(0, this.contextSize - slot.sequence.nextTokenIndex) : this.contextSize;
    }
    return free;
  }

  /** Tokens now cached in a slot (inspection and tests). */
  slotTokens(index: number): readonly number[] {
    return this.#pool.slots[index]?.sequence.contextTokens ?? [];
  }

  /**
   * Streams one generation: `started`, then `delta`s, then `finished`.
   * Errors (invalid request, context length, overload, draining) are thrown
   * as ClusterErrors before `started`. Aborting `signal` (or leaving the loop)
   * stops at the next token boundary and frees the slot.
   */
  async *generate(params: GenerateParams, signal?: AbortSignal, hooks?: GenerateHooks): AsyncGenerator<GenerationEvent, void, undefined> {
    const arrivedAt = performance.now();
    let request: CheckedParams;
    try {
      if (this.#draining || this.#closing !== undefined) throw new UnavailableError("worker is draining");
      if (signal?.aborted) throw new CancelledError();
      request = this.#check(params);
      request.grammar = await this.#grammars.get(params);
    } catch (error: unknown) {
      this.#countError(error);
      throw error;
    }
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#aborts.add(abort);
    const out = new Outbox(this.#wakes);
    const task = this.#run(request, abort.signal, out, arrivedAt, hooks);
    this.#running.add(task);
    void task.finally(() => this.#running.delete(task));
    let startedSent = false;
    const interval = params.streamIntervalMs ?? this.#streamIntervalMs;
    let nextDeltaAt = 0;
    try {
      for (;;) {
        // Wait only when there is nothing to hand over.
        if ((out.started === undefined || startedSent) && out.text.length === 0 && out.finished === undefined && out.error === undefined) {
          await out.wait();
        }
        if (out.started !== undefined && !startedSent) {
          startedSent = true;
          yield out.started;
        }
        // Log-probabilities of tokens that gave no text yet leave with the last delta.
        const lastLogprobs = out.logprobs.length > 0 && (out.finished !== undefined || out.error !== undefined);
        if (out.text.length > 0 || lastLogprobs) {
          if (interval > 0 && out.finished === undefined && out.error === undefined) {
            const early = nextDeltaAt - performance.now();
            if (early >= 1) {
              await out.pace(early);
              continue;
            }
          }
          const delta: TextDeltaEvent = { type: "delta", text: out.text, tokens: out.tokens };
          if (out.logprobs.length > 0) {
            delta.logprobs = out.logprobs;
            out.logprobs = [];
          }
          out.text = "";
          out.tokens = 0;
          yield delta;
          if (interval > 0) nextDeltaAt = performance.now() + interval;
        }
        if (out.finished !== undefined) {
          yield out.finished;
          return;
        }
        if (out.error !== undefined) throw out.error;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      abort.abort(new CancelledError());
      await task;
      this.#aborts.delete(abort);
    }
  }

  /**
   * Runs `fn` with a slot of its own (the free one holding the longest prefix
   * of `tokens`, queueing like a generation): block prefill and KV export use
   * slots without generating. Reports the slot's tokens afterwards; `close()`
   * aborts `fn`'s signal.
   */
  async withSlot<T>(tokens: readonly number[], signal: AbortSignal, fn: (sequence: LlamaContextSequence, signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#draining || this.#closing !== undefined) throw new UnavailableError("worker is draining");
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    this.#aborts.add(abort);
    const task = (async () => {
      const slot = await this.#pool.acquire(tokens, abort.signal);
      try {
        return await fn(slot.sequence, abort.signal);
      } finally {
        this.#reportSlot(slot.index, slot.sequence.contextTokens);
        this.#pool.release(slot);
      }
    })();
    const settled = task.then(() => undefined, () => undefined);
    this.#running.add(settled);
    try {
      return await task;
    } finally {
      this.#running.delete(settled);
      this.#aborts.delete(abort);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Stops accepting generations; in-flight and queued ones continue. Resolves when all are done. */
  drain(): Promise<void> {
    this.#draining = true;
    return this.#pool.whenIdle();
  }

  /**
   * Stops everything at the next token boundary (queued and running
   * generations fail with UNAVAILABLE) and waits for it. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#draining = true;
      this.#pool.rejectWaiters(new UnavailableError("worker is shutting down"));
      for (const abort of this.#aborts) abort.abort(new UnavailableError("worker is shutting down", { retryAfterMs: 1_000 }));
      await Promise.allSettled([...this.#running]);
    })();
    return this.#closing;
  }

  #check(params: GenerateParams): CheckedParams {
    const topLogprobs = params.topLogprobs ?? 0;
    if (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
      throw new InvalidRequestError(`top_logprobs must be an integer in 0..${MAX_TOP_LOGPROBS}`, { param: "top_logprobs" });
    }
    const prompt = params.promptTokens;
    const vocab = this.#loaded.vocabSize;
    const contextSize = this.#loaded.contextSize;
    if (prompt.length === 0) throw new InvalidRequestError("prompt_tokens must not be empty", { param: "prompt_tokens" });
    for (const token of prompt) {
      // llama.cpp does not check ids; an out-of-range one reads past the embedding table.
      if (!Number.isInteger(token) || token < 0 || token >= vocab) {
        throw new InvalidRequestError(`prompt token ${token} is outside the vocabulary (size ${vocab})`, { param: "prompt_tokens" });
      }
    }
    if (!Number.isInteger(params.maxTokens) || params.maxTokens < 0) {
      throw new InvalidRequestError("max_tokens must be a non-negative integer", { param: "max_tokens" });
    }
    if (prompt.length >= contextSize) {
      throw new ContextLengthError(
        `prompt has ${prompt.length} tokens; a slot holds ${contextSize} (prompt + at least 1 completion token)`,
        { param: "messages" },
      );
    }
    const maxTokens = params.maxTokens === 0 ? contextSize - prompt.length : params.maxTokens;
    if (prompt.length + maxTokens > contextSize) {
      throw new ContextLengthError(
        `prompt (${prompt.length} tokens) + max_tokens (${maxTokens}) = ${prompt.length + maxTokens} exceeds the slot context of ${contextSize} tokens`,
        { param: "max_tokens" },
      );
    }
    const s = params.sampling ?? {};
    const range = (name: string, value: number | undefined, min: number, max: number): number => {
      const v = value ?? 0;
      if (!Number.isFinite(v) || v < min || v > max) {
        throw new InvalidRequestError(`${name} must be in ${min}..${max}, got ${v}`, { param: name });
      }
      return v;
    };
    const sampling: SamplingOptions = {
      temperature: range("temperature", s.temperature, 0, 100),
      topP: range("top_p", s.topP, 0, 1),
      topK: range("top_k", s.topK, 0, 1 << 30),
      minP: range("min_p", s.minP, 0, 1),
      seed: s.seed,
      presencePenalty: range("presence_penalty", s.presencePenalty, -2, 2),
      frequencyPenalty: range("frequency_penalty", s.frequencyPenalty, -2, 2),
      repeatPenalty: range("repeat_penalty", s.repeatPenalty, 0, 100),
    };
    return {
      requestId: params.requestId ?? "",
      promptTokens: prompt,
      maxTokens,
      stop: (params.stop ?? []).filter((x) => x.length > 0),
      sampling,
      ignoreEos: params.ignoreEos ?? false,
      logprobs: params.logprobs === true || topLogprobs > 0,
      topLogprobs,
      grammar: undefined,
    };
  }

  /** One token's log-probability entry from node-llama-cpp's sampling metadata. */
  #logprob(token: number, confidence: number | undefined, probabilities: Map<Token, number> | undefined, top: number): SampledTokenLogprob {
    const entry: SampledTokenLogprob = { ...this.#logprobInfo(token, confidence ?? probabilities?.get(token as Token) ?? 0), top: [] };
    if (probabilities !== undefined && top > 0) {
      // The map is sorted, most likely first.
      for (const [id, p] of probabilities) {
        if (entry.top.length >= top || p <= 0) break;
        entry.top.push(this.#logprobInfo(id, p));
      }
    }
    return entry;
  }

  #logprobInfo(token: number, probability: number): TokenLogprobInfo {
    const bytes = this.#loaded.tokenBytes[token] ?? new Uint8Array(0);
    return { token: this.#tokenText.decode(bytes), logprob: probability > 0 ? Math.log(probability) : LOGPROB_FLOOR, bytes };
  }

  #reportSlot(slot: number, tokens: readonly number[]): void {
    try {
      this.#onSlotTokens(slot, tokens);
    } catch (error: unknown) {
      this.#logger.warn({ err: error, slot }, "slot token report failed");
    }
  }

  /** Errors by code; a cancellation is a finish reason, not an error. */
  #countError(error: unknown): void {
    const code = toClusterError(error).code;
    if (code === "cancelled") this.#metrics.requests.inc({ finish_reason: "cancelled" });
    else this.#metrics.errors.inc({ code });
  }

  #evaluateOptions(sampling: SamplingOptions, history: number[]): SequenceEvaluateOptions {
    const temperature = sampling.temperature ?? 0;
    const topP = sampling.topP ?? 0;
    const options: SequenceEvaluateOptions = {
      temperature,
      // node-llama-cpp's own defaults (topK 40, topP 0.95) would apply when
      // these are left out; the proto's zero means "off".
      topK: sampling.topK ?? 0,
      topP: topP === 0 ? 1 : topP,
      minP: sampling.minP ?? 0,
      // node-llama-cpp's default seed is the current second, shared by every
      // request started in it; draw one per request instead.
      seed: sampling.seed ?? randomInt(0, 2 ** 32),
      // EOG tokens are checked here (cheap table lookup) so that `ignore_eos`
      // and a normal stop share one path.
      yieldEogToken: true,
    };
    const penalty = sampling.repeatPenalty === undefined || sampling.repeatPenalty === 0 ? 1 : sampling.repeatPenalty;
    const presence = sampling.presencePenalty ?? 0;
    const frequency = sampling.frequencyPenalty ?? 0;
    // Penalties cost a token-array copy per token; only set them when asked for.
    if (penalty !== 1 || presence !== 0 || frequency !== 0) {
      const repeatPenalty: LlamaContextSequenceRepeatPenalty = {
        punishTokens: () => history.slice(-PENALTY_LAST_N) as Token[],
        maxPunishTokens: PENALTY_LAST_N,
        penalty,
        presencePenalty: presence,
        frequencyPenalty: frequency,
      };
      options.repeatPenalty = repeatPenalty;
    }
    return options;
  }

  async #run(
    request: CheckedParams,
    signal: AbortSignal,
    out: Outbox,
    arrivedAt: number,
    hooks?: GenerateHooks,
  ): Promise<void> {
    const metrics = this.#metrics;
    const prompt = request.promptTokens;
    let slot: Slot;
    try {
      slot = await this.#pool.acquire(prompt, signal);
    } catch (error: unknown) {
      this.#countError(error);
      out.error = toClusterError(error);
      out.notify();
      return;
    }
    const queueMs = performance.now() - arrivedAt;
    metrics.queueWait.observe(queueMs / 1000);
    const log = this.#logger.child({ request_id: request.requestId, slot: slot.index });
    let reason: FinishReasonName = "stop";
    let generated = 0;
    let cachedTokens = 0;
    let prefillMs = 0;
    let decodeMs = 0;
    try {
      if (signal.aborted) throw new CancelledError();
      const sequence = slot.sequence;
      const prepareStart = performance.now();
      const computedElsewhere = hooks?.prepare === undefined ? 0 : await hooks.prepare(sequence, signal);
      const prepareMs = hooks?.prepare === undefined ? 0 : performance.now() - prepareStart;
      // Keep the longest cached prefix; evaluation needs the logits of the
      // prompt's last token, so at least that one is always recomputed.
      const prefix = Math.min(sequence.compareContextTokens(prompt as Token[]).firstDifferentIndex, prompt.length - 1);
      if (sequence.nextTokenIndex > prefix) {
        await exclusive(sequence, () => sequence.eraseContextTokenRanges([{ start: prefix, end: sequence.nextTokenIndex }]));
      }
      cachedTokens = Math.max(0, prefix - computedElsewhere);
      this.#reportSlot(slot.index, prompt);
      out.started = { type: "started", slot: slot.index, cachedTokens, promptTokens: prompt.length, queueMs };
      out.notify();
      metrics.promptTokens.inc(prompt.length);
      if (cachedTokens > 0) metrics.cachedPromptTokens.inc(cachedTokens);

      const history = request.sampling.repeatPenalty || request.sampling.presencePenalty || request.sampling.frequencyPenalty
        ? prompt.slice(-PENALTY_LAST_N)
        : [];
      const options = this.#evaluateOptions(request.sampling, history);
      if (request.grammar !== undefined) {
        // Each generation walks the shared grammar with a state of its own.
        options.grammarEvaluationState = new LlamaGrammarEvaluationState({ model: this.#loaded.model, grammar: request.grammar });
      }
      const logprobs = request.logprobs;
      const topLogprobs = request.topLogprobs;
      const trackHistory = options.repeatPenalty !== undefined;
      const text = new TokenTextStream(this.#loaded.tokenBytes);
      const stopper = request.stop.length > 0 ? new StopMatcher(request.stop) : undefined;
      const eog = this.#loaded.endOfGeneration;
      const ignoreEos = request.ignoreEos;
      const maxTokens = request.maxTokens;
      const itl = metrics.interTokenLatency;

      const startedAt = performance.now();
      let lastAt = startedAt;
      // A long prompt goes in batch-sized steps. Given as one queue item,
      // node-llama-cpp runs it batch after batch while the other slots' next
      // tokens (re-queued a few microtasks after each batch) miss every one of
      // them, so their streams stall for the whole prefill; and it could not be
      // stopped midway. Between steps each batch takes every slot's pending
      // token, and a cancel lands within one batch.
      let evalFrom = prefix;
      const step = this.#loaded.context.batchSize;
      while (prompt.length - evalFrom > step) {
        if (signal.aborted) throw new CancelledError();
        await passGate(sequence);
        await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(evalFrom, evalFrom + step) as Token[]);
        evalFrom += step;
      }
      // With logprobs, node-llama-cpp reports each token's probability (and the
      // whole sorted distribution for alternatives, which costs a copy of the
      // vocabulary per token: only when asked for).
      const iterator: AsyncGenerator<Token | { token: Token; confidence?: number; probabilities?: Map<Token, number> }, unknown> = logprobs
        ? sequence.evaluateWithMetadata(prompt.slice(evalFrom) as Token[], { confidence: true, probabilities: topLogprobs > 0 }, options)
        : sequence.evaluate(prompt.slice(evalFrom) as Token[], options);
      let ended = false;
      const gate = gateOf(sequence);
      try {
        // The hot loop: keep per-token work to a table lookup, one streaming
        // decode and (only with stop strings) a short suffix check.
        for (;;) {
          // A slot being reused (or a KV save) needs the context between two batches.
          if (gate.closed) await gate.pass();
          const next = await iterator.next();
          if (next.done === true) break;
          const now = performance.now();
          if (generated === 0) {
            prefillMs = now - startedAt + prepareMs;
            metrics.prefillDuration.observe(prefillMs / 1000);
            metrics.timeToFirstToken.observe((now - arrivedAt) / 1000);
          } else {
            itl.observe((now - lastAt) / 1000);
          }
          lastAt = now;
          generated++;
          if (signal.aborted) {
            reason = "cancelled";
            break;
          }
          const value = next.value;
          const token: number = typeof value === "number" ? value : value.token;
          if (trackHistory) history.push(token);
          if (!ignoreEos && eog[token] === 1) {
            ended = true;
            break;
          }
          if (logprobs && typeof value !== "number") out.logprobs.push(this.#logprob(token, value.confidence, value.probabilities, topLogprobs));
          const piece = text.push(token);
          if (stopper === undefined) {
            out.append(piece, 1);
          } else {
            const match = stopper.push(piece);
            out.append(match.text, 1);
            if (match.stopped) break;
          }
          if (generated >= maxTokens) {
            reason = "length";
            ended = true;
            break;
          }
        }
      } finally {
        // Releases node-llama-cpp's sampler; the sequence is free after this.
        await iterator.return(undefined);
      }
      decodeMs = generated > 0 ? lastAt - startedAt - prefillMs : 0;
      if (ended) {
        // No more tokens: an unfinished character becomes U+FFFD, and text held
        // back as a possible stop-string prefix is released.
        const tail = text.end();
        if (stopper === undefined) {
          out.append(tail, 0);
        } else {
          const match = stopper.push(tail);
          out.append(match.stopped ? match.text : match.text + stopper.flush(), 0);
        }
      }
    } catch (error: unknown) {
      const e = toClusterError(error);
      if (e.code === "cancelled" || signal.aborted) {
        reason = "cancelled";
      } else {
        this.#countError(e);
        log.error({ err: error, generated_tokens: generated }, "generation failed");
        out.error = e;
        out.notify();
        return;
      }
    } finally {
      this.#reportSlot(slot.index, slot.sequence.contextTokens);
      this.#pool.release(slot);
    }
    metrics.generatedTokens.inc(generated);
    // Stopped by the worker (shutdown), not by the client: an error the caller
    // can act on (UNAVAILABLE), not a normal end.
    const why: unknown = signal.reason;
    if (reason === "cancelled" && why instanceof ClusterError && why.code !== "cancelled") {
      this.#countError(why);
      out.error = why;
      out.notify();
      return;
    }
    metrics.requests.inc({ finish_reason: reason });
    out.finished = {
      type: "finished",
      reason,
      promptTokens: prompt.length,
      completionTokens: generated,
      cachedTokens,
      prefillMs,
      decodeMs,
    };
    out.notify();
    log.debug(
      { finish_reason: reason, prompt_tokens: prompt.length, cached_tokens: cachedTokens, completion_tokens: generated, queue_ms: queueMs, prefill_ms: prefillMs, decode_ms: decodeMs },
      "generation finished",
    );
  }
}
