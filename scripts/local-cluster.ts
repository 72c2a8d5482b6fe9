/**
 * `npm start`: a whole cluster on this machine — Redis (the local one, or a
 * private redis-server when none answers), the scheduler, N workers and the
 * gateway, each its own process. Ctrl-C stops everything cleanly.
 *
 * Flags: --workers N (default 2), --port P (gateway HTTP, default 8080),
 * --grpc-port P (gateway gRPC, default 50050),
 * --model M (default SmolLM3-3B Q4_K_M from Hugging Face; the generated tiny
 * model when it cannot be had), --slots N, --context-size N, --threads N,
 * --redis-url URL, --log-level L (default warn).
 */
import { parseArgs } from "node:util";
import { startLocalCluster } from "@smollm/testkit";
import { DEFAULT_MODEL } from "@smollm/model";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "2" },
    port: { type: "string", default: "8080" },
    "grpc-port": { type: "string", default: "50050" },
    model: { type: "string", default: DEFAULT_MODEL },
    slots: { type: "string" },
    "context-size": { type: "string" },
    threads: { type: "string" },
    "redis-url": { type: "string" },
    "log-level": { type: "string", default: "warn" },
  },
});

const workerArgs: string[] = [];
if (values.slots) workerArgs.push("--slots", values.slots);
if (values["context-size"]) workerArgs.push("--context-size", values["context-size"]);
if (values.threads) workerArgs.push("--threads", values.threads);

const show = (line: string, label: string): void => {
  // Services log JSON; show warnings and errors (and everything at debug levels) with their origin.
  if (line.startsWith("{")) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (values["log-level"] === "warn" && entry.level !== "warn" && entry.level !== "error" && entry.level !== "fatal") return;
    } catch {
      // fall through: print as is
    }
  }
  process.stderr.write(`[${label}] ${line}\n`);
};

console.log(`starting smollm-cluster: scheduler, ${values.workers} workers, gateway (model ${values.model}) …`);
const cluster = await startLocalCluster({
  workers: Number(values.workers),
  gatewayPort: Number(values.port),
  gatewayGrpcPort: Number(values["grpc-port"]),
  model: values.model,
  modelFallback: "tiny",
  redisPrefix: "smollm:",
  workerArgs: () => workerArgs,
  logLevel: values["log-level"],
  onLine: show,
  ...(values["redis-url"] ? { redisUrl: values["redis-url"] } : {}),
});
console.log(`
smollm-cluster is up
  OpenAI-compatible API: ${cluster.gatewayUrl}/v1
  gRPC API (smollm.v1):  ${cluster.gatewayGrpcAddress}
  metrics:               ${cluster.gatewayUrl}/metrics
  redis:                 ${cluster.redisUrl}${cluster.redis ? " (private redis-server)" : ""}
  workers:               ${cluster.workers.map((w) => w.label).join(", ")}

try:
  curl -N ${cluster.gatewayUrl}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"SmolLM3-3B","stream":true,"max_tokens":32,"messages":[{"role":"user","content":"Bonjour !"}]}'

Ctrl-C stops the cluster.`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  console.log("\nstopping …");
  cluster.stop().then(
    () => {
      console.log("stopped");
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
for (const p of [cluster.gateway, cluster.scheduler, ...cluster.workers]) {
  void p.exited.then((code) => {
    if (!stopping) {
      console.error(`${p.label} exited unexpectedly (${code}); stopping the cluster`);
      stop();
    }
  });
}
