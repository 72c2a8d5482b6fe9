import { ClusterError, toClusterError, type ErrorCode } from "@smollm/common";

/** HTTP status of each cluster error code; the one place this mapping lives. */
const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  invalid_argument: 400,
  context_length_exceeded: 400,
  failed_precondition: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  resource_exhausted: 429,
  // Not a real status: nginx's "client closed request", used in logs and metrics only.
  cancelled: 499,
  internal: 500,
  unavailable: 503,
  deadline_exceeded: 504,
};

/** The error body's `code` when the error does not name its own; null where OpenAI sends null. */
const API_CODE_OF: Readonly<Record<ErrorCode, string | null>> = {
  invalid_argument: null,
  context_length_exceeded: "context_length_exceeded",
  failed_precondition: null,
  unauthenticated: "invalid_api_key",
  permission_denied: null,
  not_found: null,
  resource_exhausted: "resource_exhausted",
  cancelled: "cancelled",
  internal: null,
  unavailable: "unavailable",
  deadline_exceeded: "deadline_exceeded",
};

/** OpenAI's error object, the value of the body's `error` key. */
export interface ErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** What the HTTP edge sends for an error. */
export interface HttpError {
  status: number;
  /** The normalized error, to log (with its cause) and count. */
  error: ClusterError;
  object: ErrorObject;
  /** `Retry-After` seconds, for 429 and for 503 when the cause said when. */
  retryAfterS: number | undefined;
}

const INTERNAL_MESSAGE = "The server had an error while processing your request. Sorry about that!";

/**
 * Maps anything thrown while serving a request to its HTTP status and OpenAI
 * error object. The message of a ClusterError is meant for clients; the cause
 * (and, for internal errors, the message too) only goes to the log.
 */
export function toHttpError(thrown: unknown): HttpError {
  const error = toClusterError(thrown);
  const own = error as { status?: unknown; apiCode?: unknown };
  const status = typeof own.status === "number" ? own.status : STATUS_OF[error.code];
  const apiCode = typeof own.apiCode === "string" ? own.apiCode : API_CODE_OF[error.code];
  const object: ErrorObject = {
    // An internal error's message may describe the server; one made to set its own status is meant for clients.
    message: error.code === "internal" && typeof own.status !== "number" ? INTERNAL_MESSAGE : error.message,
    type: status === 429 ? "requests" : status >= 500 ? "server_error" : "invalid_request_error",
    param: error.param ?? null,
    code: apiCode,
  };
  let retryAfterS: number | undefined;
  if (error.retryAfterMs !== undefined && Number.isFinite(error.retryAfterMs) && (status === 429 || status === 503)) {
    retryAfterS = Math.max(1, Math.ceil(error.retryAfterMs / 1000));
  } else if (status === 429) {
    retryAfterS = 1;
  }
  return { status, error, object, retryAfterS };
}

/** The JSON body OpenAI sends for an error: `{"error":{message,type,param,code}}`. */
export function errorBody(object: ErrorObject): string {
  return JSON.stringify({ error: object });
}
