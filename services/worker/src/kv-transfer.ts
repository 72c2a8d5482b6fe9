import type { Logger } from "pino";
import type { Lifecycle, Registry } from "@smollm/common";
import { channelCredentials } from "@smollm/proto";
import { assertBlockPrefillSupport } from "./block-prefill.ts";
import type { WorkerConfig } from "./config.ts";
import type { Engine } from "./engine.ts";
import { KvClientPool, KvImporter } from "./kv-import.ts";
import { KvScratch } from "./kv-scratch.ts";
import { kvTransferHandlers } from "./kv-transfer-service.ts";
import { createKvTransferMetrics } from "./metrics.ts";
import type { LoadedModel } from "./model-loader.ts";

/** The worker's part in KV transfer: what it serves to other workers and how it pulls from them. */
export interface KvTransfer {
  readonly importer: KvImporter;
  readonly handlers: ReturnType<typeof kvTransferHandlers>;
}

/**
 * Sets up KV transfer between workers (block-parallel prefill of long
 * prompts, cross-worker prefix fetch): scratch directory, peer channels
 * (mutual TLS with this worker's own identity when it has one), metrics.
 * Everything is closed through `lifecycle`.
 */
export async function setUpKvTransfer(options: {
  config: WorkerConfig;
  loaded: LoadedModel;
  engine: Engine;
  registry: Registry;
  logger: Logger;
  lifecycle: Lifecycle;
}): Promise<KvTransfer> {
  const { config, loaded, engine, logger, lifecycle } = options;
  // Fails at start, not on the first long prompt, when node-llama-cpp changed.
  assertBlockPrefillSupport(loaded.context);
  const scratch = lifecycle.own("kv-scratch", await new KvScratch(config.kvTransferDir, config.workerId).start());
  const clients = new KvClientPool(
    config.mtls === undefined ? undefined : channelCredentials(config.mtls, { serverName: config.kvPeerServerName }),
  );
  lifecycle.own("kv-clients", { close: () => clients.close() });
  const metrics = createKvTransferMetrics(options.registry);
  const common = { scratch, metrics, logger, chunkBytes: config.kvChunkBytes, stepTokens: config.prefillStepTokens };
  return {
    importer: new KvImporter({ ...common, context: loaded.context, clients, workerId: config.workerId, stallTimeoutMs: config.kvStallTimeoutMs }),
    handlers: kvTransferHandlers({ ...common, engine, loaded, heartbeatMs: Math.max(50, Math.min(5_000, config.kvStallTimeoutMs / 4)) }),
  };
}
