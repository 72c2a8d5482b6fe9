import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

/** The repository root (this file is packages/testkit/src/). */
export const REPO_ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

/** Entry points of the services, relative to the repository root. */
export const SERVICE_ENTRY = {
  gateway: "services/gateway/src/main.ts",
  scheduler: "services/scheduler/src/main.ts",
  worker: "services/worker/src/main.ts",
} as const;

export type ServiceName = keyof typeof SERVICE_ENTRY;

/** Options of {@link startService}. */
export interface StartServiceOptions {
  /** Flags passed to the service. */
  args?: readonly string[];
  /** Extra environment. */
  env?: Record<string, string>;
  /** Label used when echoing output; default the service name. */
  label?: string;
  /** Called with every output line (JSON log lines included). */
  onLine?: (line: string, label: string) => void;
  /** How long to wait for the `ready` line; default 120 s. */
  readyTimeoutMs?: number;
}

/** A service running as its own process. */
export interface ServiceProcess {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Fields of its `ready` log line (ports, ids). */
  readonly ready: Record<string, unknown>;
  /** Every log line so far, parsed when JSON. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Sends a signal (SIGTERM, SIGKILL, SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. Idempotent. */
  stop(graceMs?: number): Promise<number | string>;
}

/**
 * Starts a service as a real process (`node --import tsx <entry>`) and waits
 * for its JSON `ready` log line. Fails with the process's output if it exits
 * or does not become ready in time.
 */
export async function startService(name: ServiceName, options: StartServiceOptions = {}): Promise<ServiceProcess> {
  const label = options.label ?? name;
  const child = spawn(process.execPath, ["--import", "tsx", SERVICE_ENTRY[name], ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const tail: string[] = [];
  const exited = new Promise<number | string>((resolveExit) => {
    child.once("exit", (code, signal) => resolveExit(code ?? signal ?? "unknown"));
  });
  let onReady: ((fields: Record<string, unknown>) => void) | undefined;
  const readyPromise = new Promise<Record<string, unknown>>((resolveReady) => {
    onReady = resolveReady;
  });
  const handle = (line: string): void => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    options.onLine?.(line, label);
    if (!line.startsWith("{")) return;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      logs.push(parsed);
      if (logs.length > 5_000) logs.splice(0, 1_000);
      if (parsed["msg"] === "ready") onReady?.(parsed);
    } catch {
      // Not a log line.
    }
  };
  if (child.stdout) createInterface({ input: child.stdout }).on("line", handle);
  if (child.stderr) createInterface({ input: child.stderr }).on("line", handle);

  const timeoutMs = options.readyTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyPromise.then((fields) => ({ kind: "ready" as const, fields })),
    exited.then((code) => ({ kind: "exited" as const, code })),
    new Promise<{ kind: "timeout" }>((r) => {
      timer = setTimeout(() => r({ kind: "timeout" }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind !== "ready") {
    child.kill("SIGKILL");
    const why = outcome.kind === "exited" ? `exited with ${outcome.code}` : `was not ready after ${timeoutMs} ms`;
    throw new Error(`${label} ${why}. Last output:\n${tail.join("\n")}`);
  }
  let stopping: Promise<number | string> | undefined;
  return {
    label,
    child,
    pid: child.pid ?? -1,
    ready: outcome.fields,
    logs,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    stop: (graceMs = 15_000) => {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const code = await exited;
        clearTimeout(t);
        return code;
      })();
      return stopping;
    },
  };
}
