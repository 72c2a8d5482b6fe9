import { Redis } from "ioredis";
import { startTestRedis, type TestRedis } from "./redis-server.ts";
import { startService, type ServiceProcess, type StartServiceOptions } from "./service-process.ts";

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions {
  /** Number of worker processes; default 2. */
  workers?: number;
  /** Model for workers and scheduler; default `tiny` (the generated model). */
  model?: string;
  /** `none` or `tiny`; default `tiny` (fall back loudly when the model cannot be had). */
  modelFallback?: "none" | "tiny";
  /** Redis to use; default: 127.0.0.1:6379 if it answers, else a private redis-server. */
  redisUrl?: string;
  /** Always start a private redis-server (tests); default false. */
  privateRedis?: boolean;
  /** Key prefix, unique per cluster so clusters sharing a Redis do not mix; default random. */
  redisPrefix?: string;
  /** Gateway HTTP port; default 0 (free port). */
  gatewayPort?: number;
  /** Gateway public gRPC port; default 0 (free port). */
  gatewayGrpcPort?: number;
  /** Extra flags for each worker (by index), e.g. a different --context-size. */
  workerArgs?: (index: number) => readonly string[];
  /** Extra flags for the gateway and the scheduler. */
  gatewayArgs?: readonly string[];
  schedulerArgs?: readonly string[];
  /** Called with every output line of every process. */
  onLine?: StartServiceOptions["onLine"];
  /** Log level for all services; default `warn`. */
  logLevel?: string;
}

/** A gateway, a scheduler and N workers running as separate processes. */
export interface LocalCluster {
  readonly gatewayUrl: string;
  /** host:port of the gateway's public gRPC API. */
  readonly gatewayGrpcAddress: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly redis: TestRedis | undefined;
  readonly gateway: ServiceProcess;
  readonly scheduler: ServiceProcess;
  readonly workers: ServiceProcess[];
  /**
   * Kills (SIGKILL) or stops (SIGTERM) the scheduler and starts a new one on
   * the same port, so the gateway reconnects to it.
   */
  restartScheduler(how?: "kill" | "stop"): Promise<ServiceProcess>;
  /** Starts one more worker (index = workers.length). */
  addWorker(extraArgs?: readonly string[]): Promise<ServiceProcess>;
  /**
   * Starts one more gateway on free ports with the first one's flags (plus
   * `extraArgs`), sharing the scheduler and Redis: several replicas behind
   * one load balancer. Its URL is `http://127.0.0.1:<ready.http_port>`.
   */
  addGateway(extraArgs?: readonly string[]): Promise<ServiceProcess>;
  /** Stops everything, gateway first; idempotent. */
  stop(): Promise<void>;
}

async function redisAnswers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
  probe.on("error", () => {});
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Starts a whole cluster on this machine against a real Redis. */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  let redis: TestRedis | undefined;
  let redisUrl = options.redisUrl ?? "redis://127.0.0.1:6379";
  if (options.privateRedis || !(await redisAnswers(redisUrl))) {
    redis = await startTestRedis();
    redisUrl = redis.url;
  }
  const prefix = options.redisPrefix ?? `smollm-${process.pid}-${Math.random().toString(36).slice(2, 8)}:`;
  const model = options.model ?? "tiny";
  const common = [
    "--redis-url", redisUrl, "--redis-prefix", prefix, "--log-level", options.logLevel ?? "warn",
  ];
  const modelArgs = ["--model", model, "--model-fallback", options.modelFallback ?? "tiny"];
  const started: ServiceProcess[] = [];
  const launch = async (...args: Parameters<typeof startService>): Promise<ServiceProcess> => {
    const p = await startService(args[0], { ...args[1], ...(options.onLine ? { onLine: options.onLine } : {}) });
    started.push(p);
    return p;
  };
  try {
    const schedulerArgs = [...common, ...modelArgs, "--host", "127.0.0.1", "--grpc-port", "0", "--ops-port", "0", ...(options.schedulerArgs ?? [])];
    let scheduler = await launch("scheduler", { args: schedulerArgs });
    const schedulerPort = String(scheduler.ready["grpc_port"]);
    const schedulerAddress = `127.0.0.1:${schedulerPort}`;
    const workers: ServiceProcess[] = [];
    let nextIndex = 0;
    const addWorker = async (extra: readonly string[] = []): Promise<ServiceProcess> => {
      // Taken synchronously: workers start concurrently and each needs its own id.
      const index = nextIndex++;
      const w = await launch("worker", {
        label: `worker-${index}`,
        args: [
          ...common, ...modelArgs, "--host", "127.0.0.1", "--grpc-port", "0", "--ops-port", "0", "--worker-id", `worker-${index}`,
          ...(options.workerArgs?.(index) ?? []), ...extra,
        ],
      });
      workers.push(w);
      return w;
    };
    await Promise.all(Array.from({ length: options.workers ?? 2 }, () => addWorker()));
    workers.sort((a, b) => a.label.localeCompare(b.label));
    const gatewayArgs = [
      "--host", "127.0.0.1", "--scheduler-address", schedulerAddress, "--redis-url", redisUrl, "--redis-prefix", prefix,
      "--log-level", options.logLevel ?? "warn", ...(options.gatewayArgs ?? []),
    ];
    const gateway = await launch("gateway", {
      args: [...gatewayArgs, "--port", String(options.gatewayPort ?? 0), "--grpc-port", String(options.gatewayGrpcPort ?? 0)],
    });
    const extraGateways: ServiceProcess[] = [];
    const addGateway = async (extra: readonly string[] = []): Promise<ServiceProcess> => {
      const g = await launch("gateway", {
        label: `gateway-${extraGateways.length + 1}`,
        args: [...gatewayArgs, "--port", "0", "--grpc-port", "0", ...extra],
      });
      extraGateways.push(g);
      return g;
    };
    let stopping: Promise<void> | undefined;
    const restartScheduler = async (how: "kill" | "stop" = "kill"): Promise<ServiceProcess> => {
      if (how === "kill") {
        scheduler.signal("SIGKILL");
        await scheduler.exited;
      } else {
        await scheduler.stop();
      }
      scheduler = await launch("scheduler", { args: [...schedulerArgs, "--grpc-port", schedulerPort] });
      return scheduler;
    };
    return {
      gatewayUrl: `http://127.0.0.1:${String(gateway.ready["http_port"])}`,
      gatewayGrpcAddress: `127.0.0.1:${String(gateway.ready["grpc_port"])}`,
      redisUrl,
      redisPrefix: prefix,
      redis,
      gateway,
      get scheduler() {
        return scheduler;
      },
      workers,
      addWorker,
      addGateway,
      restartScheduler,
      stop: () => {
        stopping ??= (async () => {
          await Promise.all([gateway, ...extraGateways].map((g) => g.stop()));
          await Promise.all(workers.map((w) => w.stop()));
          await scheduler.stop();
          await redis?.stop();
        })();
        return stopping;
      },
    };
  } catch (error: unknown) {
    await Promise.all(started.map((p) => p.stop(2_000)));
    await redis?.stop();
    throw error;
  }
}
