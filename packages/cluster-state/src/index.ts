export { ClusterKeys } from "./keys.ts";
export { parseWorkerInfo, type WorkerInfo } from "./worker-info.ts";
export { connectRedis, closeRedis, whenRedisReady, type Redis, type RedisConnectOptions } from "./redis-client.ts";
export { WorkerRegistration, type WorkerRegistrationOptions } from "./worker-registration.ts";
export { WorkerDirectory, type WorkerDirectoryOptions } from "./worker-directory.ts";
