import { UnavailableError, toClusterError } from "@smollm/common";
import type { CallContext, ServiceHandlers, publicApi } from "@smollm/proto";
import type { AccessControl, Admission } from "./access-control.ts";
import type { GatewayMetrics } from "./metrics.ts";

type ChatHandlers = ServiceHandlers<(typeof publicApi.ChatService)["method"]>;

/** What {@link withAdmission} needs. */
export interface GrpcAdmissionDeps {
  access: AccessControl;
  metrics: GatewayMetrics;
  isDraining: () => boolean;
}

function authorizationOf(context: CallContext): string | undefined {
  const value = context.metadata.get("authorization")[0];
  return typeof value === "string" ? value : undefined;
}

/**
 * Puts the public gRPC API behind the same door as HTTP: `authorization:
 * Bearer <key>` metadata is checked on every call, and the chat calls take a
 * request token and a stream slot of the key, given back when the call ends.
 * Refusals become UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED
 * (with `smollm-retry-after-ms` in the trailers).
 */
export function withAdmission(handlers: ChatHandlers, deps: GrpcAdmissionDeps): ChatHandlers {
  const { access, metrics } = deps;
  const admit = async (method: string, context: CallContext): Promise<Admission> => {
    try {
      // Refused before any token is taken, as the handler itself would.
      if (deps.isDraining()) throw new UnavailableError("The server is shutting down; retry on another instance.", { retryAfterMs: 1_000 });
      return await access.admit(authorizationOf(context));
    } catch (error: unknown) {
      const code = toClusterError(error).code;
      metrics.grpcRequests.inc({ method, code });
      metrics.errors.inc({ code });
      throw error;
    }
  };
  return {
    createChatCompletion: async (request, context) => {
      const admission = await admit("CreateChatCompletion", context);
      try {
        return await handlers.createChatCompletion(request, context);
      } finally {
        admission.release();
      }
    },
    streamChatCompletion: async function* (request, context) {
      const admission = await admit("StreamChatCompletion", context);
      try {
        yield* handlers.streamChatCompletion(request, context);
      } finally {
        admission.release();
      }
    },
    listModels: async (request, context) => {
      try {
        access.authenticate(authorizationOf(context));
      } catch (error: unknown) {
        metrics.grpcRequests.inc({ method: "ListModels", code: toClusterError(error).code });
        throw error;
      }
      return handlers.listModels(request, context);
    },
  };
}
