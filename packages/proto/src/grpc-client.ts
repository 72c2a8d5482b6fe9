import { Client, credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientReadableStream } from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { fromGrpcError } from "./grpc-errors.ts";

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call; the server sees CANCELLED and stops its work. */
  signal?: AbortSignal;
  /** Absolute deadline, epoch ms; propagated to the server. */
  deadline?: number;
  /** Request metadata, e.g. `x-request-id`. */
  metadata?: Record<string, string>;
  /** Receives the response headers (initial metadata) when they arrive. */
  onHeaders?: (headers: Record<string, string>) => void;
}

function headersOf(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata.getMap())) out[k] = typeof v === "string" ? v : v.toString("utf8");
  return out;
}

type UnaryMethod<M extends GenServiceMethods[string]> = (
  request: MessageInitShape<M["input"]>,
  options?: CallOptions,
) => Promise<MessageShape<M["output"]>>;

type StreamingMethod<M extends GenServiceMethods[string]> = (
  request: MessageInitShape<M["input"]>,
  options?: CallOptions,
) => AsyncIterable<MessageShape<M["output"]>>;

/** A typed client: unary methods return promises, server-streaming methods async iterables. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]["methodKind"] extends "unary"
    ? UnaryMethod<T[K]>
    : T[K]["methodKind"] extends "server_streaming"
      ? StreamingMethod<T[K]>
      : never;
} & { close(): void };

/** Options of {@link createClient}. */
export interface ClientOptions {
  credentials?: ChannelCredentials;
  /** Largest message, bytes; default 64 MiB. */
  maxMessageBytes?: number;
}

function toMetadata(options: CallOptions | undefined): Metadata {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(options?.metadata ?? {})) metadata.set(k, v);
  return metadata;
}

function callOptions(options: CallOptions | undefined): { deadline?: number } {
  return options?.deadline !== undefined && Number.isFinite(options.deadline) ? { deadline: options.deadline } : {};
}

/**
 * A typed grpc-js client for a protobuf-es service. Errors are ClusterErrors
 * rebuilt from the peer's status (see `fromGrpcError`).
 */
export function createClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  options: ClientOptions = {},
): ServiceClient<T> {
  const max = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const client = new Client(address, options.credentials ?? grpcCredentials.createInsecure(), {
    "grpc.max_receive_message_length": max,
    "grpc.max_send_message_length": max,
    "grpc.keepalive_time_ms": 30_000,
  });
  const result: Record<string, unknown> = { close: () => client.close() };
  for (const method of service.methods) {
    const path = `/${service.typeName}/${method.name}`;
    const serialize = (m: MessageShape<DescMessage>): Buffer => Buffer.from(toBinary(method.input, m));
    const deserialize = (b: Buffer): MessageShape<DescMessage> => fromBinary(method.output, b);
    if (method.methodKind === "unary") {
      result[method.localName] = (request: unknown, opts?: CallOptions) =>
        new Promise((resolve, reject) => {
          if (opts?.signal?.aborted) {
            reject(fromGrpcError(opts.signal.reason));
            return;
          }
          const call = client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            create(method.input, request as never),
            toMetadata(opts),
            callOptions(opts),
            (error, response) => {
              opts?.signal?.removeEventListener("abort", onAbort);
              if (error) reject(fromGrpcError(error));
              else resolve(response);
            },
          );
          const onAbort = (): void => call.cancel();
          opts?.signal?.addEventListener("abort", onAbort, { once: true });
          const onHeaders = opts?.onHeaders;
          if (onHeaders) call.on("metadata", (md: Metadata) => onHeaders(headersOf(md)));
        });
    } else if (method.methodKind === "server_streaming") {
      result[method.localName] = (request: unknown, opts?: CallOptions) =>
        streamOf(
          () =>
            client.makeServerStreamRequest(
              path,
              serialize,
              deserialize,
              create(method.input, request as never),
              toMetadata(opts),
              callOptions(opts),
            ),
          opts?.signal,
          opts?.onHeaders,
        );
    }
  }
  return result as ServiceClient<T>;
}

async function* streamOf<T>(
  start: () => ClientReadableStream<T>,
  signal: AbortSignal | undefined,
  onHeaders?: (headers: Record<string, string>) => void,
): AsyncGenerator<T> {
  if (signal?.aborted) throw fromGrpcError(signal.reason);
  const call = start();
  if (onHeaders) call.on("metadata", (md: Metadata) => onHeaders(headersOf(md)));
  const onAbort = (): void => call.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const message of call) yield message as T;
  } catch (error: unknown) {
    throw fromGrpcError(error);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Leaving the loop early (break, consumer error) must stop the server's work.
    call.cancel();
  }
}
