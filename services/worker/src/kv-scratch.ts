import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * A worker's scratch directory for KV state files (llama.cpp saves and loads
 * sequence state only through files). One directory per worker process,
 * emptied at start and removed at close; every file is deleted by whoever
 * made it as soon as it is read.
 */
export class KvScratch {
  readonly dir: string;

  constructor(root: string, workerId: string) {
    this.dir = join(root, `${workerId.replace(/[^A-Za-z0-9._-]/g, "_")}-${process.pid}`);
  }

  async start(): Promise<this> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    await this.#removeStale();
    return this;
  }

  /** Directories of worker processes on this host that died without closing (SIGKILL, OOM): their files are garbage. */
  async #removeStale(): Promise<void> {
    const root = join(this.dir, "..");
    for (const name of await readdir(root).catch(() => [] as string[])) {
      const pid = Number(/-(\d+)$/.exec(name)?.[1]);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
      await rm(join(root, name), { recursive: true, force: true }).catch(() => {});
    }
  }

  /** A fresh file name (nothing is created). */
  file(tag: string): string {
    return join(this.dir, `${tag}-${randomBytes(6).toString("hex")}.state`);
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Removes a scratch file, ignoring one that is already gone. */
export async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true }).catch(() => {});
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
