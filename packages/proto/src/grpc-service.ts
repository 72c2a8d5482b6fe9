import {
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { InvalidRequestError } from "@smollm/common";
import { toGrpcStatus } from "./grpc-errors.ts";

/** What a handler knows about its call. */
export interface CallContext {
  /** Aborted when the client cancels, its deadline passes, or the connection drops. */
  readonly signal: AbortSignal;
  /** Request metadata (headers). */
  readonly metadata: Metadata;
  /** The call's deadline as epoch ms, or Infinity. */
  readonly deadline: number;
  /** The peer address. */
  readonly peer: string;
  /**
   * Sends response headers (initial metadata) now; only before the first
   * message (unary: before returning). Later calls are ignored.
   */
  sendHeaders(headers: Readonly<Record<string, string>>): void;
}

type Unary<M extends GenServiceMethods[string]> = (
  request: MessageShape<M["input"]>,
  context: CallContext,
) => Promise<MessageInitShape<M["output"]>>;

type ServerStreaming<M extends GenServiceMethods[string]> = (
  request: MessageShape<M["input"]>,
  context: CallContext,
) => AsyncIterable<MessageInitShape<M["output"]>>;

/** Handlers for every method of a service: unary returns a promise, server-streaming an async iterable. */
export type ServiceHandlers<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]["methodKind"] extends "unary"
    ? Unary<T[K]>
    : T[K]["methodKind"] extends "server_streaming"
      ? ServerStreaming<T[K]>
      : never;
};

/** Hooks called around every call (logging, metrics). */
export interface ServiceHooks {
  /** A call failed; `context` carries its metadata (e.g. `x-request-id`, for the log line). */
  onError?: (method: string, error: unknown, context: CallContext) => void;
}

function serializer<D extends DescMessage>(schema: D) {
  return (message: MessageShape<D>): Buffer => Buffer.from(toBinary(schema, message));
}

/** What a request deserializer hands on for bytes that are not a valid message. */
class MalformedMessage {
  constructor(readonly error: InvalidRequestError) {}
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> => {
    try {
      return fromBinary(schema, bytes);
    } catch (error: unknown) {
      // A throwing deserializer makes grpc-js answer INTERNAL ("Error
      // deserializing request") before any handler runs, so a client's bad
      // bytes (truncated, wrong wire types, invalid UTF-8 in a string) would
      // look like a server bug. Hand the handler wrapper a marker instead; it
      // answers INVALID_ARGUMENT.
      return new MalformedMessage(
        new InvalidRequestError(`malformed ${schema.typeName} message: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        }),
      ) as unknown as MessageShape<D>;
    }
  };
}

/** The grpc-js service definition (paths, (de)serializers) of a protobuf-es service. */
export function serviceDefinition<T extends GenServiceMethods>(service: GenService<T>): ServiceDefinition {
  const definition: Record<string, unknown> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.localName,
    };
  }
  return definition as ServiceDefinition;
}

function contextOf(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): {
  context: CallContext;
  done: () => void;
} {
  const controller = new AbortController();
  const onCancel = (): void => controller.abort(new DOMException("client cancelled", "AbortError"));
  call.once("cancelled", onCancel);
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : Infinity;
  let headersSent = false;
  const sendHeaders = (headers: Readonly<Record<string, string>>): void => {
    if (headersSent) return;
    headersSent = true;
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    call.sendMetadata(metadata);
  };
  return {
    context: { signal: controller.signal, metadata: call.metadata, deadline: deadlineMs, peer: call.getPeer(), sendHeaders },
    done: () => call.removeListener("cancelled", onCancel),
  };
}

/** Adapts typed handlers to grpc-js, mapping thrown errors to gRPC statuses and honouring back-pressure. */
export function serviceImplementation<T extends GenServiceMethods>(
  service: GenService<T>,
  handlers: ServiceHandlers<T>,
  hooks: ServiceHooks = {},
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (handlers as Record<string, unknown>)[method.localName];
    if (typeof handler !== "function") throw new Error(`no handler for ${service.typeName}.${method.name}`);
    if (method.methodKind === "unary") {
      impl[method.localName] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const { context, done } = contextOf(call);
        const request: unknown = call.request;
        (request instanceof MalformedMessage
          ? Promise.reject(request.error)
          : (handler as (r: unknown, c: CallContext) => Promise<unknown>)(request, context)
        ).then(
          (response) => {
            done();
            callback(null, create(method.output, response as never));
          },
          (error: unknown) => {
            done();
            hooks.onError?.(method.localName, error, context);
            callback(toGrpcStatus(error));
          },
        );
      };
    } else if (method.methodKind === "server_streaming") {
      impl[method.localName] = (call: ServerWritableStream<unknown, unknown>) => {
        const { context, done } = contextOf(call);
        void (async () => {
          try {
            const request: unknown = call.request;
            if (request instanceof MalformedMessage) throw request.error;
            const iterable = (handler as (r: unknown, c: CallContext) => AsyncIterable<unknown>)(request, context);
            for await (const message of iterable) {
              if (context.signal.aborted) break;
              const flushed = call.write(create(method.output, message as never));
              if (!flushed) await waitForDrain(call, context.signal);
            }
            if (!context.signal.aborted) call.end();
          } catch (error: unknown) {
            hooks.onError?.(method.localName, error, context);
            // grpc-js sends a status for an emitted error (destroy() would not).
            if (!context.signal.aborted) call.emit("error", toGrpcStatus(error));
          } finally {
            done();
          }
        })();
      };
    } else {
      throw new Error(`streaming kind ${method.methodKind} is not supported by this adapter`);
    }
  }
  return impl;
}

function waitForDrain(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = (): void => {
      call.removeListener("drain", finish);
      signal.removeEventListener("abort", finish);
      resolve();
    };
    call.once("drain", finish);
    signal.addEventListener("abort", finish, { once: true });
  });
}

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  credentials?: ServerCredentials;
  /** Largest message accepted, bytes; default 64 MiB (long prompts are token arrays). */
  maxMessageBytes?: number;
}

/** A bound grpc-js server; `close()` is idempotent and waits for calls to end (forcing after `graceMs`). */
export interface GrpcServer {
  readonly server: Server;
  readonly port: number;
  close(graceMs?: number): Promise<void>;
}

/** Creates, binds and starts a gRPC server; services are added by `register` before binding. */
export async function startGrpcServer(
  options: GrpcServerOptions,
  register: (server: Server) => void,
): Promise<GrpcServer> {
  const max = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const server = new Server({
    "grpc.max_receive_message_length": max,
    "grpc.max_send_message_length": max,
    "grpc.keepalive_permit_without_calls": 1,
  });
  register(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${options.host}:${options.port}`,
      options.credentials ?? ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    );
  });
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    close: (graceMs = 5_000) => {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}
