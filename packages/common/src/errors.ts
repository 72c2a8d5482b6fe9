/**
 * The few error kinds the cluster distinguishes. Each edge (HTTP, gRPC) maps
 * them to its own status codes in one function; the cause is logged, never
 * sent to clients.
 */
export type ErrorCode =
  | "invalid_argument"
  | "context_length_exceeded"
  | "not_found"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable"
  | "cancelled"
  | "deadline_exceeded"
  | "failed_precondition"
  | "internal";

export interface ClusterErrorOptions {
  /** The underlying error; logged, not exposed. */
  cause?: unknown;
  /** The request field at fault (OpenAI's `param`). */
  param?: string;
  /** When a retry may succeed, after how long (`Retry-After`). */
  retryAfterMs?: number;
}

/** Base class of every error the cluster reports on purpose. */
export class ClusterError extends Error {
  readonly code: ErrorCode;
  readonly param: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: ClusterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.param = options.param;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The request is malformed or asks for something impossible (HTTP 400, INVALID_ARGUMENT). */
export class InvalidRequestError extends ClusterError {
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super("invalid_argument", message, options);
  }
}

/** Prompt plus max_tokens does not fit any worker's context (HTTP 400, INVALID_ARGUMENT). */
export class ContextLengthError extends ClusterError {
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super("context_length_exceeded", message, options);
  }
}

/** No capacity now: queues are full (HTTP 429/503, RESOURCE_EXHAUSTED). */
export class OverloadedError extends ClusterError {
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super("resource_exhausted", message, options);
  }
}

/** A needed service or worker cannot be reached (HTTP 503, UNAVAILABLE). */
export class UnavailableError extends ClusterError {
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super("unavailable", message, options);
  }
}

/** The caller went away or aborted (HTTP 499, CANCELLED). */
export class CancelledError extends ClusterError {
  constructor(message = "request cancelled", options: ClusterErrorOptions = {}) {
    super("cancelled", message, options);
  }
}

/** The request's deadline passed (HTTP 504, DEADLINE_EXCEEDED). */
export class DeadlineExceededError extends ClusterError {
  constructor(message = "deadline exceeded", options: ClusterErrorOptions = {}) {
    super("deadline_exceeded", message, options);
  }
}

/** Normalizes anything thrown into a ClusterError; unknown errors become `internal`. */
export function toClusterError(error: unknown): ClusterError {
  if (error instanceof ClusterError) return error;
  if (error instanceof Error && (error.name === "AbortError" || error.name === "CancelledError")) {
    return new CancelledError("request cancelled", { cause: error });
  }
  if (error instanceof Error && error.name === "TimeoutError") {
    return new DeadlineExceededError("deadline exceeded", { cause: error });
  }
  return new ClusterError("internal", "internal error", { cause: error });
}
