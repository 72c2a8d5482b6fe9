import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { ClusterError, UnavailableError } from "@smollm/common";
import {
  SchedulerService,
  addHealthService,
  createClient,
  publicApi,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type GrpcServer,
} from "@smollm/proto";
import { chatServiceHandlers } from "./grpc-chat-service.ts";
import { AccessControl, type Admission } from "./access-control.ts";
import { withAdmission } from "./grpc-admission.ts";
import { withLatencyMetrics } from "./grpc-latency.ts";
import { createApiServer, internalCredentials, publicGrpcCredentials, type ApiServer } from "./tls.ts";
import { ApiError, modelNotFound } from "./api-error.ts";
import { serveChatCompletion, type ChatCompletionsDeps } from "./chat-completions.ts";
import type { GatewayConfig } from "./config.ts";
import { Generator } from "./generation.ts";
import { WorkerEjections } from "./worker-ejections.ts";
import { errorBody, toHttpError } from "./http-errors.ts";
import { createGatewayMetrics, type GatewayMetrics } from "./metrics.ts";
import { requestIdOf } from "./request-id.ts";
import { WorkerPool } from "./worker-pool.ts";

/** A running gateway. */
export interface Gateway {
  /** The HTTP port it listens on (useful with port 0). */
  readonly port: number;
  /** The public gRPC API's port; undefined when disabled. */
  readonly grpcPort: number | undefined;
  readonly metrics: GatewayMetrics;
  /** API keys and per-key limits. */
  readonly access: AccessControl;
  /**
   * Starts draining: `/readyz` and new chat completions answer 503, in-flight
   * requests go on. Resolves when none is left (the caller bounds the wait).
   */
  drain(): Promise<void>;
  /** Closes the HTTP server (aborting what is still in flight), the gRPC clients and the rate limiter. Idempotent. */
  close(): Promise<void>;
}

const JSON_HEADERS = { "content-type": "application/json" } as const;

/**
 * Starts the OpenAI-compatible HTTP gateway: `POST /v1/chat/completions`,
 * `GET /v1/models[/{id}]`, and the ops endpoints `/healthz`, `/readyz`,
 * `/metrics` on the same port. Resolves once listening.
 */
export async function startGateway(config: GatewayConfig, logger: Logger): Promise<Gateway> {
  const metrics = createGatewayMetrics();
  const access = await AccessControl.start(config, logger, metrics);
  const credentials = internalCredentials(config);
  const scheduler = createClient(SchedulerService, config.schedulerAddress, { credentials });
  const workers = new WorkerPool(credentials);
  const generator = new Generator({
    scheduler,
    workers,
    metrics,
    logger,
    defaultMaxTokens: config.defaultMaxTokens,
    maxRetries: config.maxRetries,
    workerAckTimeoutMs: config.workerAckTimeoutMs,
    workerStallTimeoutMs: config.workerStallTimeoutMs,
    ejections: new WorkerEjections(config.workerEjectMs),
    routeTimeoutMs: config.routeTimeoutMs,
    routeRetryMs: config.routeRetryMs,
  });
  const deps: ChatCompletionsDeps = {
    config,
    logger,
    metrics,
    generator,
    models: new Set([config.modelId, ...config.modelAliases]),
    systemFingerprint: `fp_${createHash("sha256").update(config.modelId).digest("hex").slice(0, 10)}`,
  };
  const createdS = Math.floor(Date.now() / 1000);
  const modelObject = { id: config.modelId, object: "model", created: createdS, owned_by: "smollm-cluster" };
  const modelList = JSON.stringify({ object: "list", data: [modelObject] });
  const modelJson = JSON.stringify(modelObject);

  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let drainedPromise: Promise<void> | undefined;

  const sendError = (res: ServerResponse, requestId: string, error: ClusterError): void => {
    const failure = toHttpError(error);
    const headers: Record<string, string> = { ...JSON_HEADERS, "x-request-id": requestId };
    if (failure.retryAfterS !== undefined) headers["retry-after"] = String(failure.retryAfterS);
    if (failure.status === 401) headers["www-authenticate"] = 'Bearer realm="smollm"';
    res.writeHead(failure.status, headers).end(errorBody(failure.object));
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    const requestId = requestIdOf(req.headers["x-request-id"]);
    // While draining, have clients open their next request elsewhere.
    if (draining) res.setHeader("connection", "close");

    if (path === "/v1/chat/completions") {
      if (method !== "POST") return methodNotAllowed(res, requestId, method, path, "POST");
      if (draining) {
        return sendError(res, requestId, new UnavailableError("The server is shutting down; retry on another instance.", { retryAfterMs: 1000 }));
      }
      inFlight++;
      admitAndServe(req, res, requestId)
        .catch((error: unknown) => logger.error({ err: error, request_id: requestId }, "chat completion handler failed"))
        .finally(leave);
      return;
    }
    if (method !== "GET" && method !== "HEAD") {
      const known = path === "/v1/models" || path.startsWith("/v1/models/") || OPS_PATHS.has(path);
      if (known) return methodNotAllowed(res, requestId, method, path, "GET");
      return notFound(res, requestId, method, path);
    }
    switch (path) {
      case "/healthz":
        res.writeHead(200, JSON_HEADERS).end('{"status":"ok"}');
        return;
      case "/readyz":
        if (draining) res.writeHead(503, JSON_HEADERS).end('{"status":"not_ready"}');
        else res.writeHead(200, JSON_HEADERS).end('{"status":"ready"}');
        return;
      case "/metrics":
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
          (error: unknown) => {
            logger.error({ err: error }, "metrics collection failed");
            res.writeHead(500).end();
          },
        );
        return;
      case "/v1/models":
        if (!authenticated(req, res, requestId)) return;
        res.writeHead(200, { ...JSON_HEADERS, "x-request-id": requestId }).end(modelList);
        return;
    }
    if (path.startsWith("/v1/models/")) {
      if (!authenticated(req, res, requestId)) return;
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      if (deps.models.has(id)) res.writeHead(200, { ...JSON_HEADERS, "x-request-id": requestId }).end(modelJson);
      else sendError(res, requestId, modelNotFound(id));
      return;
    }
    notFound(res, requestId, method, path);
  };

  /** Authentication and per-key limits come first: a refused request's body is never read. */
  const admitAndServe = async (req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> => {
    let admission: Admission;
    try {
      admission = await access.admit(req.headers.authorization);
    } catch (error: unknown) {
      const e = toHttpError(error).error;
      metrics.errors.inc({ code: e.code });
      logger.info({ request_id: requestId, code: e.code, reason: e.message }, "chat completion refused");
      sendError(res, requestId, e);
      return;
    }
    try {
      for (const [k, v] of Object.entries(admission.headers)) res.setHeader(k, v);
      await serveChatCompletion(deps, req, res, requestId);
    } finally {
      admission.release();
    }
  };
  const authenticated = (req: IncomingMessage, res: ServerResponse, requestId: string): boolean => {
    try {
      access.authenticate(req.headers.authorization);
      return true;
    } catch (error: unknown) {
      sendError(res, requestId, toHttpError(error).error);
      return false;
    }
  };

  const methodNotAllowed = (res: ServerResponse, requestId: string, method: string, path: string, allow: string): void => {
    res.setHeader("allow", allow);
    sendError(res, requestId, new ApiError("invalid_argument", `Method not allowed (${method} ${path}); use ${allow}.`, { status: 405 }));
  };
  const notFound = (res: ServerResponse, requestId: string, method: string, path: string): void =>
    sendError(res, requestId, new ApiError("not_found", `Invalid URL (${method} ${path})`));

  const server: ApiServer = createApiServer(config, (req, res) => {
    try {
      onRequest(req, res);
    } catch (error: unknown) {
      // decodeURIComponent on a malformed path, mostly; never let a request crash the process.
      logger.warn({ err: error, url: req.url }, "request handling failed");
      if (!res.headersSent) res.writeHead(400, JSON_HEADERS).end(errorBody(toHttpError(new ApiError("invalid_argument", "Malformed request.")).object));
    }
  });
  server.on("clientError", (error, socket) => {
    // Malformed HTTP: answer 400 if the socket can still take it, as Node would by default.
    logger.debug({ err: error }, "client error");
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const leave = (): void => {
    inFlight--;
    if (inFlight === 0 && drained !== undefined) drained();
  };
  let grpc: GrpcServer | undefined;
  if (config.grpcPort >= 0) {
    // Public messages get the HTTP body limit, not the internal 64 MiB default
    // (sized for token arrays): a client must not make the gateway buffer
    // and decode 64 MiB per call; larger ones get RESOURCE_EXHAUSTED.
    const limits = { maxMessageBytes: config.maxBodyBytes };
    grpc = await startGrpcServer({ host: config.host, port: config.grpcPort, credentials: publicGrpcCredentials(config), ...limits }, (s) => {
      addHealthService(s, [publicApi.ChatService.typeName], () => !draining);
      s.addService(
        serviceDefinition(publicApi.ChatService),
        serviceImplementation(
          publicApi.ChatService,
          withAdmission(
            withLatencyMetrics(
              chatServiceHandlers({
                config, logger, metrics, generator, models: deps.models,
                isDraining: () => draining,
                enter: () => void inFlight++,
                leave,
              }),
              metrics,
            ),
            { access, metrics, isDraining: () => draining },
          ),
        ),
      );
    });
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    grpcPort: grpc?.port,
    metrics,
    access,
    drain: () => {
      if (drainedPromise === undefined) {
        draining = true;
        server.closeIdleConnections();
        // GOAWAY now: gRPC clients open their next calls on another replica; calls in flight finish.
        void grpc?.close(config.drainTimeoutMs);
        drainedPromise = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
        logger.info({ in_flight: inFlight }, "draining");
      }
      return drainedPromise;
    },
    close: () => {
      closing ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await Promise.all([closed, grpc?.close(1_000)]);
        scheduler.close();
        workers.close();
        await access.close();
      })();
      return closing;
    },
  };
}

const OPS_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);
