export {
  ChatCompletionStream,
  SmolLMClient,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionDelta,
  type ChatCompletionParams,
  type Model,
  type SmolLMClientOptions,
  type TlsOptions,
  type Usage,
} from "./client.ts";
export {
  AuthenticationError,
  CancelledError,
  DeadlineExceededError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  SmolLMError,
  UnavailableError,
  toSmolLMError,
  type SmolLMErrorOptions,
  type StatusName,
} from "./errors.ts";
export { DEFAULT_RETRY, type RetryOptions } from "./retry.ts";
