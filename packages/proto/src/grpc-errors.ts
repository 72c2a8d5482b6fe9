import { status, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  CancelledError,
  ClusterError,
  ContextLengthError,
  DeadlineExceededError,
  InvalidRequestError,
  OverloadedError,
  UnavailableError,
  toClusterError,
  type ErrorCode,
} from "@smollm/common";

const CODE_TO_STATUS: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  context_length_exceeded: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  cancelled: status.CANCELLED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  failed_precondition: status.FAILED_PRECONDITION,
  internal: status.INTERNAL,
};

/** Trailer keys that carry a ClusterError's details across a hop. */
const CODE_KEY = "smollm-error-code";
const PARAM_KEY = "smollm-error-param";
const RETRY_KEY = "smollm-retry-after-ms";

/** The gRPC status object a server sends for an error (message only; the cause stays in logs). */
export function toGrpcStatus(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  const e = toClusterError(error);
  const metadata = new Metadata();
  metadata.set(CODE_KEY, e.code);
  if (e.param !== undefined) metadata.set(PARAM_KEY, e.param);
  if (e.retryAfterMs !== undefined) metadata.set(RETRY_KEY, String(e.retryAfterMs));
  return { code: CODE_TO_STATUS[e.code], details: e.message, metadata };
}

/** Turns an error from a gRPC call back into the ClusterError the peer meant. */
export function fromGrpcError(error: unknown): ClusterError {
  if (error instanceof ClusterError) return error;
  const se = error as Partial<ServiceError> | undefined;
  if (se === undefined || typeof se.code !== "number") return toClusterError(error);
  const message = se.details ?? se.message ?? "grpc error";
  const meta = se.metadata;
  const code = meta?.get(CODE_KEY)[0]?.toString() as ErrorCode | undefined;
  const param = meta?.get(PARAM_KEY)[0]?.toString();
  const retry = meta?.get(RETRY_KEY)[0]?.toString();
  const options = {
    cause: error,
    ...(param === undefined ? {} : { param }),
    ...(retry === undefined ? {} : { retryAfterMs: Number(retry) }),
  };
  if (code !== undefined && code in CODE_TO_STATUS) {
    if (code === "context_length_exceeded") return new ContextLengthError(message, options);
    return new ClusterError(code, message, options);
  }
  switch (se.code) {
    case status.INVALID_ARGUMENT:
      return new InvalidRequestError(message, options);
    case status.RESOURCE_EXHAUSTED:
      return new OverloadedError(message, options);
    case status.UNAVAILABLE:
      return new UnavailableError(message, options);
    case status.CANCELLED:
      return new CancelledError(message, options);
    case status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(message, options);
    default:
      return new ClusterError("internal", message, options);
  }
}
