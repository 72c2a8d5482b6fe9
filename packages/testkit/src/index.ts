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
export { startTcpProxy, type ProxyMode, type TcpProxy } from "./tcp-proxy.ts";
export { metricSum, scrapeMetrics } from "./prometheus-text.ts";
export { RssSampler, rssBytes, type RssSample, type RssTrend } from "./proc-stats.ts";
export {
  chatCompletion,
  loadAgent,
  percentile,
  runLoad,
  type ChatCallOptions,
  type ChatOutcomeKind,
  type ChatResult,
  type LoadOptions,
  type LoadSummary,
} from "./load-client.ts";
export {
  runSoak,
  type IdleMemory,
  type MemoryTrend,
  type SoakClusterOptions,
  type SoakPhase,
  type SoakPhaseResult,
  type SoakReport,
} from "./soak.ts";
