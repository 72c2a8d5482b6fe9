import { ClusterError, type ClusterErrorOptions, type ErrorCode } from "@smollm/common";

/** Options of {@link ApiError}. */
export interface ApiErrorOptions extends ClusterErrorOptions {
  /** HTTP status when the cluster code's usual one does not fit (413, 405). */
  status?: number;
  /** The OpenAI `code` of the error body, e.g. `model_not_found`. */
  apiCode?: string;
}

/**
 * An error only the HTTP edge produces (unknown model, body too large, bad
 * route). It is a ClusterError, so logging and metrics treat it like any other;
 * `status` and `apiCode` refine what {@link toHttpError} sends.
 */
export class ApiError extends ClusterError {
  readonly status: number | undefined;
  readonly apiCode: string | undefined;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status;
    this.apiCode = options.apiCode;
  }
}

/** OpenAI's answer to an unknown model: 404 `model_not_found`. */
export function modelNotFound(model: string): ApiError {
  return new ApiError("not_found", `The model \`${model}\` does not exist or you do not have access to it.`, {
    apiCode: "model_not_found",
  });
}

/**
 * The model's output cannot be given as asked: a function call that is not
 * JSON, names a function that was not offered, or has arguments its schema
 * rejects. A server error (the client did nothing wrong; retrying may help),
 * with a message that says what was wrong, as OpenAI does for "The model
 * produced invalid content".
 */
export function invalidModelOutput(message: string): ApiError {
  return new ApiError("internal", message, { status: 500, apiCode: "invalid_model_output" });
}
