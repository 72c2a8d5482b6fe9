/** Shared pieces of the fault, bad-input and soak tests. */
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, publicApi } from "@smollm/proto";
import { chatCompletion, loadAgent, startService, type ChatResult, type LocalCluster, type ServiceProcess } from "@smollm/testkit";
import { metric, scrape } from "./helpers.ts";

/**
 * A chat completion body with a short prompt (`/system_override` replaces
 * SmolLM3's long default system turn), so prefill is cheap and prompts of
 * different requests share little (the scheduler spreads them by load).
 */
export function chatBody(
  content: string,
  options: { maxTokens?: number; stream?: boolean; ignoreEos?: boolean } = {},
): Record<string, unknown> {
  return {
    model: "SmolLM3-3B",
    messages: [
      { role: "system", content: "/system_override Be brief." },
      { role: "user", content },
    ],
    max_tokens: options.maxTokens ?? 8,
    stream: options.stream ?? true,
    stream_options: { include_usage: true },
    ignore_eos: options.ignoreEos ?? true,
  };
}

/** True while the process has not exited. */
export const alive = (p: ServiceProcess): boolean => p.child.exitCode === null && p.child.signalCode === null;

export const opsMetrics = (p: ServiceProcess): Promise<Map<string, number>> =>
  scrape(`http://127.0.0.1:${String(p.ready["ops_port"])}/metrics`);

/** Metrics of every live worker, summed. */
export async function workerSum(workers: readonly ServiceProcess[], name: string, labels: Record<string, string> = {}): Promise<number> {
  let total = 0;
  for (const w of workers) {
    if (!alive(w)) continue;
    try {
      total += metric(await opsMetrics(w), name, labels);
    } catch {
      // A stopped (SIGSTOP) worker does not answer; it holds what it holds.
    }
  }
  return total;
}

/** Slots in use plus requests queued over every live worker (0 = nothing leaked). */
export async function busySlots(workers: readonly ServiceProcess[]): Promise<number> {
  return (await workerSum(workers, "smollm_worker_active_slots")) + (await workerSum(workers, "smollm_worker_queued_requests"));
}

/** Workers the scheduler routes to now (ready, not draining). */
export async function readyWorkers(cluster: LocalCluster): Promise<number> {
  return metric(await opsMetrics(cluster.scheduler), "smollm_scheduler_workers", { state: "ready" });
}

export async function gatewayMetric(gateway: ServiceProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const port = String(gateway.ready["http_port"]);
  return metric(await scrape(`http://127.0.0.1:${port}/metrics`), name, labels);
}

/** Polls until `check` holds; resolves with the milliseconds it took, throws after `ms`. */
export async function timeUntil(what: string, check: () => boolean | Promise<boolean>, ms = 15_000, everyMs = 50): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
    } catch {
      // A scrape of a restarting process fails: keep polling.
    }
    if (Date.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(everyMs);
  }
}

const extraGateways: ServiceProcess[] = [];

/** Stops every gateway {@link startGateway} started (a file's `after`): a failed case must not leave one running. */
export async function stopExtraGateways(): Promise<void> {
  await Promise.all(extraGateways.splice(0).map((g) => g.stop(2_000)));
}

/** Another gateway process on the cluster's scheduler, with its own flags (deadlines under test). */
export async function startGateway(cluster: LocalCluster, args: readonly string[], schedulerAddress?: string): Promise<ServiceProcess> {
  const gateway = await startService("gateway", {
    label: "gateway-extra",
    args: [
      "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
      "--scheduler-address", schedulerAddress ?? `127.0.0.1:${String(cluster.scheduler.ready["grpc_port"])}`,
      "--log-level", "warn", ...args,
    ],
  });
  extraGateways.push(gateway);
  return gateway;
}

export const gatewayUrlOf = (gateway: ServiceProcess): string => `http://127.0.0.1:${String(gateway.ready["http_port"])}`;

/** What a public-API gRPC stream delivered. */
export interface GrpcStreamResult {
  messages: number;
  text: string;
  workerId: string;
  finishReason: string;
  /** The ClusterError code it failed with, if it failed. */
  errorCode?: string | undefined;
  errorMessage?: string | undefined;
}

/** Runs `smollm.v1.ChatService/StreamChatCompletion`; `onMessage` may act mid-stream. Never throws. */
export async function grpcStream(
  address: string,
  content: string,
  options: { maxTokens?: number; deadlineMs?: number; onMessage?: (r: GrpcStreamResult) => void } = {},
): Promise<GrpcStreamResult> {
  const client = createClient(publicApi.ChatService, address);
  const result: GrpcStreamResult = { messages: 0, text: "", workerId: "", finishReason: "" };
  try {
    const params = {
      model: "SmolLM3-3B",
      messages: [
        { role: "system", content: "/system_override Be brief." },
        { role: "user", content },
      ],
      maxTokens: options.maxTokens ?? 8,
    };
    const callOptions = {
      deadline: Date.now() + (options.deadlineMs ?? 60_000),
      onHeaders: (h: Record<string, string>) => {
        result.workerId = h["x-smollm-worker-id"] ?? result.workerId;
      },
    };
    for await (const chunk of client.streamChatCompletion({ params }, callOptions)) {
      result.messages++;
      result.text += chunk.content;
      if (chunk.finishReason) result.finishReason = chunk.finishReason;
      options.onMessage?.(result);
    }
  } catch (error: unknown) {
    const e = error as { code?: string; message?: string };
    result.errorCode = e.code ?? "unknown";
    result.errorMessage = e.message;
  } finally {
    client.close();
  }
  return result;
}

/** A closed loop of requests running while a fault is injected; bounded in count and time. */
export interface Traffic {
  /** Results so far. */
  readonly results: ChatResult[];
  /** Stops sending and resolves with every result once the requests in flight are answered. */
  stop(): Promise<ChatResult[]>;
}

/**
 * Starts `concurrency` clients sending short completions back to back to
 * `url` until stopped, `max` requests were sent, or `maxMs` passed.
 */
export function startTraffic(
  url: string,
  options: { concurrency?: number; max?: number; maxMs?: number; prefix: string; timeoutMs?: number },
): Traffic {
  const results: ChatResult[] = [];
  const max = options.max ?? 2_000;
  const endAt = Date.now() + (options.maxMs ?? 90_000);
  let sent = 0;
  let stopped = false;
  const agent = loadAgent();
  const loop = async (): Promise<void> => {
    while (!stopped && sent < max && Date.now() < endAt) {
      const i = sent++;
      results.push(
        await chatCompletion(url, chatBody(`${options.prefix} ${i}: one more`), {
          requestId: `${options.prefix}-${i}`,
          agent,
          timeoutMs: options.timeoutMs ?? 30_000,
        }),
      );
    }
  };
  const loops = Promise.all(Array.from({ length: options.concurrency ?? 6 }, loop));
  return {
    results,
    stop: async () => {
      stopped = true;
      await loops;
      agent.destroy();
      return results;
    },
  };
}

/** Slowest answer of a batch, ms. */
export const slowest = (results: readonly ChatResult[]): number => results.reduce((m, r) => Math.max(m, r.ms), 0);
