import { readFileSync } from "node:fs";

/** Resident set size of a process in bytes (Linux `/proc/<pid>/status` VmRSS); undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One RSS reading of every watched process. */
export interface RssSample {
  /** Milliseconds since the sampler started. */
  atMs: number;
  /** label → bytes (absent when the process was gone). */
  rss: Record<string, number>;
}

/** What the RSS of one process did over a run. */
export interface RssTrend {
  label: string;
  /** Mean of the samples in the first and last quarter of the run (after `warmupFraction`), MiB. */
  earlyMiB: number;
  lateMiB: number;
  peakMiB: number;
  /** lateMiB - earlyMiB. */
  growthMiB: number;
}

/**
 * Samples the RSS of a set of processes every `intervalMs` (a cheap read of
 * /proc, so it can run beside a load test without disturbing it).
 */
export class RssSampler {
  readonly samples: RssSample[] = [];
  readonly #pids: Map<string, number>;
  readonly #startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;

  constructor(pids: Record<string, number>, intervalMs = 1_000) {
    this.#pids = new Map(Object.entries(pids));
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Milliseconds since the sampler started (the time base of its samples). */
  get elapsedMs(): number {
    return Date.now() - this.#startedAt;
  }

  /** Adds a process to watch from now on. */
  watch(label: string, pid: number): void {
    this.#pids.set(label, pid);
  }

  sample(): RssSample {
    const rss: Record<string, number> = {};
    for (const [label, pid] of this.#pids) {
      const bytes = rssBytes(pid);
      if (bytes !== undefined) rss[label] = bytes;
    }
    const s = { atMs: Date.now() - this.#startedAt, rss };
    this.samples.push(s);
    return s;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
  }

  /**
   * Early vs late RSS of every process, over the samples in `window` (ms since
   * the start; default all). The first `warmupFraction` of them (JIT, heap
   * and model pages settling) is left out; the rest is split into quarters and
   * the first is compared with the last.
   */
  trends(warmupFraction = 0.2, window: { fromMs?: number; toMs?: number } = {}): RssTrend[] {
    const inWindow = this.samples.filter((s) => s.atMs >= (window.fromMs ?? 0) && s.atMs <= (window.toMs ?? Infinity));
    const labels = new Set(inWindow.flatMap((s) => Object.keys(s.rss)));
    const skip = Math.floor(inWindow.length * warmupFraction);
    const body = inWindow.slice(skip);
    const quarter = Math.max(1, Math.floor(body.length / 4));
    const mib = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length / 2 ** 20);
    return [...labels].map((label) => {
      const values = (ss: RssSample[]): number[] => ss.map((s) => s.rss[label]).filter((v): v is number => v !== undefined);
      const early = mib(values(body.slice(0, quarter)));
      const late = mib(values(body.slice(-quarter)));
      const all = values(inWindow);
      return {
        label,
        earlyMiB: early,
        lateMiB: late,
        peakMiB: all.length === 0 ? NaN : Math.max(...all) / 2 ** 20,
        growthMiB: late - early,
      };
    });
  }
}
