export { ClusterKeys } from "./keys.ts";
export { parseWorkerInfo, type WorkerInfo } from "./worker-info.ts";
export { connectRedis, closeRedis, whenRedisReady, type Redis, type RedisConnectOptions } from "./redis-client.ts";
export { WorkerRegistration, type WorkerRegistrationOptions } from "./worker-registration.ts";
export { WorkerDirectory, type WorkerDirectoryOptions } from "./worker-directory.ts";
export { blockHashes, DEFAULT_BLOCK_SIZE } from "./block-hash.ts";
export { KvCachePublisher, type KvCachePublisherOptions } from "./kv-cache-publisher.ts";
export { KvIndex } from "./kv-index.ts";
export { KvIndexSync, type KvIndexSyncOptions } from "./kv-index-sync.ts";
