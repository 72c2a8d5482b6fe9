/** What a worker tells the cluster about itself; refreshed on every heartbeat. */
export interface WorkerInfo {
  /** Unique, stable for the life of the process. */
  id: string;
  /** host:port of its gRPC server, reachable by gateways. */
  address: string;
  /** Model name (file or URI) it serves. */
  model: string;
  /** Sequences in its context (concurrent generations). */
  slots: number;
  /** Tokens each slot can hold (prompt + completion). */
  contextSize: number;
  /** Slots generating now. */
  activeSlots: number;
  /** Requests waiting for a slot. */
  queued: number;
  /** Upper bound of queued requests before it rejects. */
  maxQueue: number;
  /** KV cells not held by active sequences, over all slots. */
  freeKvTokens: number;
  /** Draining: finishing its streams, accepting nothing new. */
  draining: boolean;
  /** Epoch ms when the process started. */
  startedAt: number;
  /** Epoch ms of this heartbeat. */
  updatedAt: number;
}

/** Parses a registry value; undefined when malformed (a foreign or older writer). */
export function parseWorkerInfo(text: string | null | undefined): WorkerInfo | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<WorkerInfo>;
    if (typeof v.id !== "string" || typeof v.address !== "string" || typeof v.slots !== "number") return undefined;
    if (typeof v.contextSize !== "number") return undefined;
    return {
      id: v.id,
      address: v.address,
      model: typeof v.model === "string" ? v.model : "",
      slots: v.slots,
      contextSize: v.contextSize,
      activeSlots: typeof v.activeSlots === "number" ? v.activeSlots : 0,
      queued: typeof v.queued === "number" ? v.queued : 0,
      maxQueue: typeof v.maxQueue === "number" ? v.maxQueue : 0,
      freeKvTokens: typeof v.freeKvTokens === "number" ? v.freeKvTokens : v.slots * v.contextSize,
      draining: v.draining === true,
      startedAt: typeof v.startedAt === "number" ? v.startedAt : 0,
      updatedAt: typeof v.updatedAt === "number" ? v.updatedAt : 0,
    };
  } catch {
    return undefined;
  }
}
