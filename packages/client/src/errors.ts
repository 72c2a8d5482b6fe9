import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/** gRPC status names, as `SmolLMError.status`. */
export type StatusName = keyof typeof status;

/** Options of {@link SmolLMError}. */
export interface SmolLMErrorOptions {
  /** The gRPC status code. */
  code: status;
  /** Response trailers, lowercase keys. */
  metadata?: Readonly<Record<string, string>>;
  /** The `x-request-id` the call was sent with, to find it in the server's logs. */
  requestId?: string | undefined;
  cause?: unknown;
}

/**
 * Base class of every error the SDK throws. The subclass says what to do
 * about it; `status` is the gRPC status name, `reason` the server's finer
 * error code (`context_length_exceeded`, `rate_limit`…), `param` the request
 * field at fault.
 */
export class SmolLMError extends Error {
  /** gRPC status code. */
  readonly code: status;
  /** gRPC status name, e.g. `UNAVAILABLE`. */
  readonly status: StatusName;
  /** The server's error code (`smollm-error-code` trailer), e.g. `context_length_exceeded`; undefined when none. */
  readonly reason: string | undefined;
  /** The request field at fault (`smollm-error-param`), e.g. `messages`. */
  readonly param: string | undefined;
  /** When the server says a retry may succeed, after how long (ms). */
  readonly retryAfterMs: number | undefined;
  /** The call's request id (`x-request-id`), for the server's logs. */
  readonly requestId: string | undefined;
  /** Response trailers. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(message: string, options: SmolLMErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.status = (Object.keys(status) as StatusName[]).find((k) => status[k] === options.code) ?? "UNKNOWN";
    this.metadata = options.metadata ?? {};
    this.reason = this.metadata["smollm-error-code"];
    this.param = this.metadata["smollm-error-param"];
    const retry = Number(this.metadata["smollm-retry-after-ms"]);
    this.retryAfterMs = Number.isFinite(retry) && retry > 0 ? retry : undefined;
    this.requestId = options.requestId;
  }
}

/** The request is invalid (bad parameter, prompt too long for the context): fix it, do not retry. INVALID_ARGUMENT. */
export class InvalidRequestError extends SmolLMError {}
/** No API key, or an unknown one. UNAUTHENTICATED. */
export class AuthenticationError extends SmolLMError {}
/** The key is known but may not do this (e.g. disabled). PERMISSION_DENIED. */
export class PermissionDeniedError extends SmolLMError {}
/** Unknown model or method. NOT_FOUND / UNIMPLEMENTED. */
export class NotFoundError extends SmolLMError {}
/** A rate or concurrency limit, or every worker is full: retry after `retryAfterMs`. RESOURCE_EXHAUSTED. */
export class RateLimitError extends SmolLMError {}
/**
 * The cluster could not serve the call (no worker, gateway draining,
 * connection refused). Retried by the SDK before the first token; thrown
 * when retries are exhausted or the stream had already started. UNAVAILABLE.
 */
export class UnavailableError extends SmolLMError {}
/** The call's deadline (`timeoutMs`, `deadline`) passed. DEADLINE_EXCEEDED. */
export class DeadlineExceededError extends SmolLMError {}
/** The caller aborted the call (its AbortSignal); `cause` is the signal's reason. CANCELLED. */
export class CancelledError extends SmolLMError {}
/** A server-side failure. INTERNAL and any other status. */
export class InternalError extends SmolLMError {}

function classOf(code: status): new (message: string, options: SmolLMErrorOptions) => SmolLMError {
  switch (code) {
    case status.INVALID_ARGUMENT:
    case status.FAILED_PRECONDITION:
    case status.OUT_OF_RANGE:
      return InvalidRequestError;
    case status.UNAUTHENTICATED:
      return AuthenticationError;
    case status.PERMISSION_DENIED:
      return PermissionDeniedError;
    case status.NOT_FOUND:
    case status.UNIMPLEMENTED:
      return NotFoundError;
    case status.RESOURCE_EXHAUSTED:
      return RateLimitError;
    case status.UNAVAILABLE:
      return UnavailableError;
    case status.DEADLINE_EXCEEDED:
      return DeadlineExceededError;
    case status.CANCELLED:
      return CancelledError;
    default:
      return InternalError;
  }
}

function metadataOf(metadata: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (metadata === undefined) return out;
  for (const [k, v] of Object.entries(metadata.getMap())) out[k] = typeof v === "string" ? v : v.toString("utf8");
  return out;
}

/** Turns a grpc-js error (or anything thrown during a call) into the matching {@link SmolLMError}. */
export function toSmolLMError(error: unknown, requestId?: string): SmolLMError {
  if (error instanceof SmolLMError) return error;
  const se = error as Partial<ServiceError> | undefined;
  if (se === undefined || se === null || typeof se.code !== "number") {
    return new InternalError(error instanceof Error ? error.message : String(error), { code: status.INTERNAL, requestId, cause: error });
  }
  const Class = classOf(se.code);
  return new Class(se.details || se.message || "gRPC error", { code: se.code, metadata: metadataOf(se.metadata), requestId, cause: error });
}
