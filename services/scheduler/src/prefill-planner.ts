/**
 * Plans KV transfer for a routed request, after the router chose the worker
 * that will decode it:
 *
 * - Block-parallel prefill (after NVIDIA's Star Attention): a long prompt's
 *   positions [0, prompt - 1) are cut into blocks, one per worker; the decoder
 *   takes the first (it needs no anchor), idle workers with room take the
 *   others, and each block attends to an anchor — the prompt's first tokens —
 *   instead of everything before it. An approximation, so only above a
 *   prompt length, never for a request that asks for exact prefill, and
 *   exact with `anchor: full` (then it only spreads memory, not work).
 * - Prefix fetch: when another worker holds a much longer cached prefix than
 *   the decoder (the router preferred the decoder for load), the decoder
 *   pulls that prefix's KV instead of recomputing it.
 */
import type { WorkerInfo } from "@smollm/cluster-state";

/** Which prompt tokens each block attends to before itself. */
export type AnchorRule =
  /** Everything before the block: exact, no approximation. */
  | { readonly kind: "full" }
  /** The first block, as in Star Attention. */
  | { readonly kind: "first-block" }
  /** The prompt's first `tokens` tokens (capped at the block's start). */
  | { readonly kind: "tokens"; readonly tokens: number };

/** Options of {@link planKvTransfer}; see the scheduler's config for the flags. */
export interface PrefillPlannerOptions {
  /** Prompts at least this long (tokens) are prefilled in parallel; 0 = never. */
  readonly parallelMinTokens: number;
  /** Most workers one prompt is split over, the decoder included. */
  readonly parallelMaxWorkers: number;
  /** No block smaller than this (tokens): fewer workers rather than tiny blocks. */
  readonly parallelMinBlockTokens: number;
  /**
   * No block larger than this (tokens; 0 = one block per worker): a worker then
   * prefills several blocks in turn. Attention work grows with the square of
   * what a block evaluates, so smaller blocks cost less in total — and
   * approximate more (fewer tokens see their true preceding text).
   */
  readonly parallelMaxBlockTokens?: number;
  readonly anchor: AnchorRule;
  /** Fetch a prefix from another worker when it holds at least this many tokens more than the decoder; 0 = never. */
  readonly prefixFetchMinTokens: number;
}

/** What the planner knows about the request. */
export interface PlanInput {
  readonly promptTokens: number;
  /** 0 = no client limit (the prompt and one token must fit). */
  readonly maxTokens: number;
  readonly exactPrefill: boolean;
  /** The router's choice. */
  readonly decoder: WorkerInfo;
  /** Live workers routing may use (not draining, not excluded), the decoder among them. */
  readonly workers: readonly WorkerInfo[];
  /** Cached prompt prefix (tokens) per worker, from the KV index; undefined without one. */
  readonly cachedTokens?: ReadonlyMap<string, number> | undefined;
  /** Requests routed to a worker that its last heartbeat cannot count yet. */
  readonly pending?: (workerId: string) => number;
}

export interface PlannedBlock {
  readonly start: number;
  readonly end: number;
  readonly workerId: string;
  /** Empty for the decoder itself. */
  readonly workerAddress: string;
}

export interface ParallelPrefillPlan {
  readonly blocks: readonly PlannedBlock[];
  readonly anchorTokens: number;
  readonly fullAnchor: boolean;
}

export interface PrefixSource {
  readonly workerId: string;
  readonly workerAddress: string;
  readonly tokens: number;
}

export interface KvTransferPlan {
  readonly parallelPrefill?: ParallelPrefillPlan;
  readonly kvSource?: PrefixSource;
}

/** Blocks start on multiples of this: cheap, and keeps llama.cpp's batches aligned across workers. */
const BLOCK_ALIGN = 64;

/** Parses `--parallel-prefill-anchor`: `full`, `first-block` or a token count. */
export function parseAnchorRule(text: string): AnchorRule | undefined {
  if (text === "full") return { kind: "full" };
  if (text === "first-block") return { kind: "first-block" };
  if (/^\d+$/.test(text)) return { kind: "tokens", tokens: Number(text) };
  return undefined;
}

function hasFreeSlot(w: WorkerInfo, pending: number): boolean {
  return !w.draining && w.activeSlots + w.queued + pending < w.slots;
}

/**
 * Block bounds over [0, n) for `k` workers. Work per block is what it
 * evaluates (anchor + block, attention growing with both), so with an anchor
 * of A tokens the first block — which has none — is A tokens longer than the
 * others; with the full anchor the work grows with the block's end anyway
 * and equal blocks are as good as any.
 */
export function blockBounds(n: number, k: number, anchor: AnchorRule): number[] {
  let first: number;
  if (anchor.kind === "tokens") first = (n - anchor.tokens) / k + anchor.tokens;
  else first = n / k;
  first = Math.min(n, Math.max(BLOCK_ALIGN, first));
  const rest = (n - first) / Math.max(1, k - 1);
  const bounds = [0];
  for (let i = 1; i < k; i++) {
    const at = Math.round((first + (i - 1) * rest) / BLOCK_ALIGN) * BLOCK_ALIGN;
    if (at > (bounds[bounds.length - 1] ?? 0) && at < n) bounds.push(at);
  }
  bounds.push(n);
  return bounds;
}

/** The anchor length of a block starting at `start`. */
export function anchorLength(anchor: AnchorRule, start: number, firstBlockEnd: number): number {
  switch (anchor.kind) {
    case "full":
      return start;
    case "first-block":
      return Math.min(start, firstBlockEnd);
    case "tokens":
      return Math.min(start, anchor.tokens);
  }
}

/** Plans block-parallel prefill and prefix fetch for one routed request (either, both or none). */
export function planKvTransfer(input: PlanInput, options: PrefillPlannerOptions): KvTransferPlan {
  const parallelPrefill = planParallelPrefill(input, options);
  if (parallelPrefill !== undefined) return { parallelPrefill };
  const kvSource = planPrefixFetch(input, options);
  return kvSource === undefined ? {} : { kvSource };
}

function planParallelPrefill(input: PlanInput, options: PrefillPlannerOptions): ParallelPrefillPlan | undefined {
  const n = input.promptTokens - 1;
  if (input.exactPrefill || options.parallelMinTokens <= 0 || input.promptTokens < options.parallelMinTokens) return undefined;
  const decoderCached = input.cachedTokens?.get(input.decoder.id) ?? 0;
  // Mostly cached already: the decoder evaluates the rest alone.
  if (input.promptTokens - decoderCached < options.parallelMinTokens) return undefined;
  const pending = input.pending ?? (() => 0);
  const maxByBlock = Math.max(1, Math.floor(n / Math.max(1, options.parallelMinBlockTokens)));
  const kMax = Math.min(options.parallelMaxWorkers, maxByBlock);
  if (kMax < 2) return undefined;
  // Helpers: idle first (free slots), then most free KV.
  const helpers = input.workers
    .filter((w) => w.id !== input.decoder.id && hasFreeSlot(w, pending(w.id)))
    .sort((a, b) => a.activeSlots + a.queued + pending(a.id) - (b.activeSlots + b.queued + pending(b.id)) || b.freeKvTokens - a.freeKvTokens);
  const maxBlock = options.parallelMaxBlockTokens ?? 0;
  // Fewer workers when the helpers' slots cannot hold anchor + block.
  for (let k = Math.min(kMax, helpers.length + 1); k >= 2; k--) {
    // Blocks per worker: enough to keep every block under the maximum, the same for every worker.
    const rounds = maxBlock > 0 ? Math.max(1, Math.ceil(Math.ceil(n / maxBlock) / k)) : 1;
    const count = Math.min(k * rounds, Math.max(k, Math.floor(n / Math.max(1, options.parallelMinBlockTokens))));
    const bounds = blockBounds(n, count, options.anchor);
    if (bounds.length - 1 !== count) continue;
    const firstEnd = bounds[1] ?? n;
    // Block i goes to worker i mod k (worker 0 = the decoder); each worker must hold its largest anchor + block.
    const needOf = (slot: number): number => {
      let need = 0;
      for (let i = slot; i < count; i += k) {
        const start = bounds[i]!;
        need = Math.max(need, anchorLength(options.anchor, start, firstEnd) + (bounds[i + 1]! - start) + 1);
      }
      return need;
    };
    const chosen: WorkerInfo[] = [];
    let fits = true;
    for (let slot = 1; slot < k; slot++) {
      const need = needOf(slot);
      const w = helpers.find((h) => !chosen.includes(h) && h.contextSize >= need);
      if (w === undefined) {
        fits = false;
        break;
      }
      chosen.push(w);
    }
    if (!fits) continue;
    const blocks: PlannedBlock[] = [];
    for (let i = 0; i < count; i++) {
      const w = i % k === 0 ? undefined : chosen[(i % k) - 1]!;
      blocks.push({ start: bounds[i]!, end: bounds[i + 1]!, workerId: w?.id ?? input.decoder.id, workerAddress: w?.address ?? "" });
    }
    return {
      blocks,
      anchorTokens: options.anchor.kind === "tokens" ? options.anchor.tokens : options.anchor.kind === "first-block" ? firstEnd : 0,
      fullAnchor: options.anchor.kind === "full",
    };
  }
  return undefined;
}

function planPrefixFetch(input: PlanInput, options: PrefillPlannerOptions): PrefixSource | undefined {
  const cached = input.cachedTokens;
  if (options.prefixFetchMinTokens <= 0 || cached === undefined) return undefined;
  const own = cached.get(input.decoder.id) ?? 0;
  const pending = input.pending ?? (() => 0);
  let best: WorkerInfo | undefined;
  let bestTokens = 0;
  for (const w of input.workers) {
    const c = cached.get(w.id) ?? 0;
    // The holder needs a free slot for a moment (saving its state); a busy one would make the decoder wait.
    if (w.id === input.decoder.id || c <= bestTokens || !hasFreeSlot(w, pending(w.id))) continue;
    best = w;
    bestTokens = c;
  }
  const tokens = Math.min(bestTokens, input.promptTokens - 1);
  if (best === undefined || tokens - own < options.prefixFetchMinTokens) return undefined;
  return { workerId: best.id, workerAddress: best.address, tokens };
}
