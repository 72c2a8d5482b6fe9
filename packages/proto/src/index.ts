export * from "./gen/smollm/internal/v1/worker_pb.ts";
export * from "./gen/smollm/internal/v1/scheduler_pb.ts";
export * from "./gen/smollm/internal/v1/kv_transfer_pb.ts";
export * as publicApi from "./gen/smollm/v1/chat_pb.ts";
export { createClient, type CallOptions, type ClientOptions, type ServiceClient } from "./grpc-client.ts";
export {
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type CallContext,
  type GrpcServer,
  type GrpcServerOptions,
  type ServiceHandlers,
  type ServiceHooks,
} from "./grpc-service.ts";
export { fromGrpcError, toGrpcStatus } from "./grpc-errors.ts";
export { channelCredentials, serverCredentials, type ChannelTlsOptions } from "./grpc-tls.ts";
export { addHealthService } from "./health.ts";
export { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.ts";
