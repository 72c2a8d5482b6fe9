import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * How one chat completion ended, as the client saw it:
 * - `ok`: a whole answer (stream: `[DONE]` after a finish reason);
 * - `http_error`: a status other than 200 with an error body;
 * - `stream_error`: an SSE `error` event after the stream began (the text before it is kept);
 * - `closed`: the connection ended (closed or reset) without an answer or an error event;
 * - `timeout`: nothing conclusive within the client's own deadline (a hang).
 */
export type ChatOutcomeKind = "ok" | "http_error" | "stream_error" | "closed" | "timeout";

/** One request's result. */
export interface ChatResult {
  requestId: string;
  outcome: ChatOutcomeKind;
  /** HTTP status; 0 when no response head arrived. */
  status: number;
  /** `error.code` of the body or the SSE error event (else its type or the HTTP status); for `closed`, the socket error code. */
  errorCode?: string | undefined;
  errorMessage?: string | undefined;
  /** The text received (stream: concatenated deltas). */
  text: string;
  /** Content deltas received. */
  deltas: number;
  finishReason?: string | undefined;
  completionTokens?: number | undefined;
  workerId?: string | undefined;
  /** The `x-request-id` the gateway answered with. */
  echoedRequestId?: string | undefined;
  /** `retry-after` header of an error answer. */
  retryAfter?: string | undefined;
  ms: number;
  /** Time to the first content delta (stream) or to the response (non-stream). */
  ttftMs?: number | undefined;
}

/** Options of {@link chatCompletion}. */
export interface ChatCallOptions {
  /** Sent as `x-request-id`, so each answer can be matched to its request. */
  requestId: string;
  /** The client's own cap: past it the request is abandoned and counted as `timeout`. Default 60 s. */
  timeoutMs?: number;
  /** Aborts the request from the client side (result `closed`, code `ABORTED`). */
  signal?: AbortSignal;
  /** Called with each content delta of a stream (fault tests act on the first one). */
  onDelta?: (text: string, result: ChatResult) => void;
  /** Called when the response head arrives. */
  onResponse?: (res: IncomingMessage) => void;
  agent?: Agent;
}

/** A keep-alive agent with no connection cap, for load generation. */
export function loadAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
}

/**
 * POSTs one `/v1/chat/completions` (streaming or not, as `body.stream` says)
 * and classifies the outcome. Never throws.
 */
export function chatCompletion(baseUrl: string, body: Record<string, unknown>, options: ChatCallOptions): Promise<ChatResult> {
  const started = performance.now();
  const payload = JSON.stringify(body);
  const result: ChatResult = { requestId: options.requestId, outcome: "closed", status: 0, text: "", deltas: 0, ms: 0 };
  return new Promise<ChatResult>((resolve) => {
    let settled = false;
    const finish = (outcome: ChatOutcomeKind, patch: Partial<ChatResult> = {}): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      Object.assign(result, patch, { outcome, ms: performance.now() - started });
      resolve(result);
      // A finished response leaves its socket to the keep-alive agent; an
      // abandoned one (timeout, abort) must not keep the connection busy.
      if ((outcome === "timeout" || outcome === "closed") && !req.destroyed) req.destroy();
    };
    const url = new URL("/v1/chat/completions", baseUrl);
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        agent: options.agent ?? false,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          "x-request-id": options.requestId,
        },
      },
      (res) => {
        result.status = res.statusCode ?? 0;
        const header = (name: string): string | undefined => {
          const v = res.headers[name];
          return typeof v === "string" ? v : undefined;
        };
        result.echoedRequestId = header("x-request-id");
        result.workerId = header("x-smollm-worker-id");
        result.retryAfter = header("retry-after");
        options.onResponse?.(res);
        const sse = (header("content-type") ?? "").startsWith("text/event-stream");
        const chunks: Buffer[] = [];
        let buffer = "";
        let done = false;
        let sseError: { code?: string; message?: string } | undefined;
        res.on("data", (chunk: Buffer) => {
          if (!sse) {
            chunks.push(chunk);
            return;
          }
          buffer += chunk.toString("utf8");
          let at: number;
          while ((at = buffer.indexOf("\n\n")) >= 0) {
            const event = buffer.slice(0, at);
            buffer = buffer.slice(at + 2);
            if (!event.startsWith("data: ")) continue;
            const data = event.slice(6);
            if (data === "[DONE]") {
              done = true;
              continue;
            }
            let json: {
              error?: { code?: string | null; type?: string; message?: string };
              choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
              usage?: { completion_tokens?: number };
            };
            try {
              json = JSON.parse(data) as typeof json;
            } catch {
              sseError = { code: "bad_sse_frame", message: data.slice(0, 200) };
              continue;
            }
            if (json.error) {
              sseError = { code: json.error.code ?? json.error.type ?? "error", message: json.error.message ?? "" };
              continue;
            }
            const choice = json.choices?.[0];
            const content = choice?.delta?.content;
            if (typeof content === "string" && content.length > 0) {
              if (result.deltas === 0) result.ttftMs = performance.now() - started;
              result.deltas++;
              result.text += content;
              options.onDelta?.(content, result);
            }
            if (choice?.finish_reason) result.finishReason = choice.finish_reason;
            if (json.usage?.completion_tokens !== undefined) result.completionTokens = json.usage.completion_tokens;
          }
        });
        res.on("end", () => {
          if (sse) {
            if (sseError) finish("stream_error", { errorCode: sseError.code, errorMessage: sseError.message });
            else if (done && result.finishReason !== undefined) finish("ok");
            else finish("closed", { errorCode: "TRUNCATED" });
            return;
          }
          const text = Buffer.concat(chunks).toString("utf8");
          let json: {
            error?: { code?: string | null; type?: string; message?: string };
            choices?: { message?: { content?: string }; finish_reason?: string }[];
            usage?: { completion_tokens?: number };
          } = {};
          try {
            json = JSON.parse(text) as typeof json;
          } catch {
            // Not JSON: classified below by status.
          }
          if (result.status === 200 && json.choices) {
            result.ttftMs = performance.now() - started;
            finish("ok", {
              text: json.choices[0]?.message?.content ?? "",
              finishReason: json.choices[0]?.finish_reason,
              completionTokens: json.usage?.completion_tokens,
            });
          } else {
            finish("http_error", {
              errorCode: json.error?.code ?? json.error?.type ?? String(result.status),
              errorMessage: json.error?.message ?? text.slice(0, 200),
            });
          }
        });
        // A reset after the head: the body never ended.
        res.on("error", (error: NodeJS.ErrnoException) => {
          if (sseError) finish("stream_error", { errorCode: sseError.code, errorMessage: sseError.message });
          else finish("closed", { errorCode: error.code ?? error.name, errorMessage: error.message });
        });
        res.on("close", () => {
          if (!res.complete) {
            if (sseError) finish("stream_error", { errorCode: sseError.code, errorMessage: sseError.message });
            else finish("closed", { errorCode: "ECONNRESET", errorMessage: "connection closed mid-response" });
          }
        });
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      finish("closed", { errorCode: error.code ?? error.name, errorMessage: error.message });
    });
    const timer = setTimeout(() => finish("timeout", { errorCode: "CLIENT_TIMEOUT" }), options.timeoutMs ?? 60_000);
    const onAbort = (): void => finish("closed", { errorCode: "ABORTED" });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    req.end(payload);
  });
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  baseUrl: string;
  /** Requests to send at most. */
  total: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** No request is started after this long (the run is bounded in time as well as count). */
  timeLimitMs: number;
  /** Each request's body. */
  body: (seq: number) => Record<string, unknown>;
  /** Request id of request `seq`; default `load-<random>-<seq>`. */
  requestId?: (seq: number) => string;
  /** Per-request client deadline; default 60 s. */
  requestTimeoutMs?: number;
  onResult?: (result: ChatResult, seq: number) => void;
  /** Keep every result (text dropped) in the summary; default true. */
  keepResults?: boolean;
  /**
   * After a 429 or 503, a client waits this long (jittered, 50-100 %) before
   * its next request, as one honouring Retry-After would; default 0 (at once).
   */
  pauseAfterShedMs?: number;
}

/** What a load run measured. */
export interface LoadSummary {
  sent: number;
  ok: number;
  byOutcome: Record<string, number>;
  /** `outcome:code` → count, for everything but `ok`. */
  byError: Record<string, number>;
  /** Answers whose `x-request-id` differed from the request's, or request ids answered twice. */
  mismatched: number;
  durationMs: number;
  requestsPerS: number;
  latencyMs: { p50: number; p99: number; max: number };
  ttftMs: { p50: number; p99: number };
  completionTokens: number;
  results: ChatResult[];
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * A closed-loop load: `concurrency` workers each send requests back to back
 * until `total` were sent or `timeLimitMs` passed. Every result is checked for
 * its echoed request id, so a lost or crossed answer is visible.
 */
export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const agent = loadAgent();
  const tag = Math.random().toString(36).slice(2, 8);
  const idOf = options.requestId ?? ((seq: number) => `load-${tag}-${seq}`);
  const started = performance.now();
  const results: ChatResult[] = [];
  const byOutcome: Record<string, number> = {};
  const byError: Record<string, number> = {};
  const seen = new Set<string>();
  const latencies: number[] = [];
  const ttfts: number[] = [];
  let mismatched = 0;
  let next = 0;
  let ok = 0;
  let completionTokens = 0;
  const keep = options.keepResults ?? true;
  const loop = async (): Promise<void> => {
    for (;;) {
      if (next >= options.total || performance.now() - started > options.timeLimitMs) return;
      const seq = next++;
      const requestId = idOf(seq);
      const result = await chatCompletion(options.baseUrl, options.body(seq), {
        requestId,
        agent,
        timeoutMs: options.requestTimeoutMs ?? 60_000,
      });
      byOutcome[result.outcome] = (byOutcome[result.outcome] ?? 0) + 1;
      if (result.outcome === "ok") {
        ok++;
        latencies.push(result.ms);
        if (result.ttftMs !== undefined) ttfts.push(result.ttftMs);
        completionTokens += result.completionTokens ?? 0;
      } else {
        const key = `${result.outcome}:${result.errorCode ?? "?"}`;
        byError[key] = (byError[key] ?? 0) + 1;
      }
      if (result.echoedRequestId !== undefined && (result.echoedRequestId !== requestId || seen.has(requestId))) mismatched++;
      seen.add(requestId);
      options.onResult?.(result, seq);
      if (keep) results.push({ ...result, text: "" });
      const pause = options.pauseAfterShedMs ?? 0;
      if (pause > 0 && (result.status === 429 || result.status === 503)) await sleep(pause * (0.5 + Math.random() / 2));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  agent.destroy();
  const durationMs = performance.now() - started;
  return {
    sent: next,
    ok,
    byOutcome,
    byError,
    mismatched,
    durationMs,
    requestsPerS: (next / durationMs) * 1000,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length === 0 ? NaN : latencies.reduce((a, b) => Math.max(a, b)) },
    ttftMs: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
    completionTokens,
    results,
  };
}
