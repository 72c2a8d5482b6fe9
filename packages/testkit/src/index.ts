export { freePort, startTestRedis, type TestRedis } from "./redis-server.ts";
export {
  REPO_ROOT,
  SERVICE_ENTRY,
  startService,
  type ServiceName,
  type ServiceProcess,
  type StartServiceOptions,
} from "./service-process.ts";
export { startLocalCluster, type LocalCluster, type LocalClusterOptions } from "./local-cluster.ts";
