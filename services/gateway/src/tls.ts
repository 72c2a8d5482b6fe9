import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
import { channelCredentials, serverCredentials } from "@smollm/proto";
import type { GatewayConfig } from "./config.ts";

/** The gateway's HTTP server: plain, or HTTPS with `--tls-cert/--tls-key`. */
export type ApiServer = HttpServer | HttpsServer;

// Idle keep-alive outlives the usual 60 s load-balancer idle timeout, so the
// balancer, not the gateway, closes idle connections (no race on reuse).
const HTTP_OPTIONS = { noDelay: true, keepAliveTimeout: 65_000, headersTimeout: 66_000 } as const;

/**
 * Creates the HTTP server of the OpenAI API and the ops paths; HTTPS when the
 * config has a TLS identity (then probes must use `scheme: HTTPS`).
 */
export function createApiServer(config: GatewayConfig, handler: (req: IncomingMessage, res: ServerResponse) => void): ApiServer {
  const tls = config.tls;
  if (tls === undefined) return createHttpServer(HTTP_OPTIONS, handler);
  return createHttpsServer({ ...HTTP_OPTIONS, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, handler);
}

/** Credentials of the public gRPC API: TLS with `--tls-cert/--tls-key`, else plaintext. */
export function publicGrpcCredentials(config: GatewayConfig): ServerCredentials {
  return serverCredentials(config.tls);
}

/** Credentials of the gateway's clients of the scheduler and workers: mutual TLS with `--mtls-*`, else plaintext. */
export function internalCredentials(config: GatewayConfig): ChannelCredentials {
  return channelCredentials(config.mtls, { serverName: config.mtlsServerName });
}
