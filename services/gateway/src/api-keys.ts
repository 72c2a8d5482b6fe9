import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";

/**
 * One API key as configured. The key itself is never stored: only its
 * SHA-256, so the file (a Kubernetes Secret) does not hold usable credentials.
 */
export interface ApiKeyEntry {
  /** Shown in logs, metrics labels and error messages; unique in the file. */
  readonly name: string;
  /** SHA-256 of the key's UTF-8 bytes, 64 lowercase hex digits. */
  readonly sha256: string;
  /** Sustained requests per minute; undefined: the gateway's `--rate-limit-rpm`; 0: unlimited. */
  readonly rpm: number | undefined;
  /** Requests that may come at once before the per-minute rate applies; undefined: `--rate-limit-burst`, else `rpm`. */
  readonly burst: number | undefined;
  /** Chat completions in flight at once (streamed or not); undefined: `--max-concurrent-streams`; 0: unlimited. */
  readonly maxStreams: number | undefined;
  /** A disabled key is known but refused (403), e.g. while a tenant is suspended. */
  readonly disabled: boolean;
}

/** An API keys file that cannot be used; the message lists every problem with its line. */
export class ApiKeysFileError extends Error {
  constructor(readonly problems: readonly string[], source: string) {
    super(`${source}: ${problems.join("; ")}`);
    this.name = "ApiKeysFileError";
  }
}

/** The SHA-256 (lowercase hex) the keys file stores for `key`. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const HEX = /^[0-9a-f]{64}$/;
const HASH_HINT = 'store hashes, not keys: `printf %s "$KEY" | sha256sum` (or `npm run api-key`)';

function parseHash(raw: string): string | undefined {
  const hex = raw.startsWith("sha256:") ? raw.slice("sha256:".length) : raw;
  const lower = hex.toLowerCase();
  return HEX.test(lower) ? lower : undefined;
}

function parseLimit(raw: string | undefined, what: string, problems: string[], where: string): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    problems.push(`${where}: ${what} must be a non-negative integer, got "${raw}"`);
    return undefined;
  }
  return n;
}

/**
 * Parses an API keys file. Two formats:
 *
 * - lines: `[name:]sha256:<64 hex>[:rpm[:streams]]`; `#` starts a comment,
 *   empty fields mean "the gateway's default", 0 means unlimited;
 * - JSON: `{"keys": [{"name", "sha256", "rpm", "burst", "max_streams", "disabled"}]}`
 *   (or the bare array), when the text starts with `{` or `[`.
 *
 * A name defaults to `key-<first 8 hex digits>`. Plain keys, duplicate names
 * and duplicate hashes are refused.
 *
 * @throws ApiKeysFileError listing every problem.
 */
export function parseApiKeys(text: string, source = "API keys file"): ApiKeyEntry[] {
  const problems: string[] = [];
  const trimmed = text.trimStart();
  const entries = trimmed.startsWith("{") || trimmed.startsWith("[") ? parseJson(trimmed, problems) : parseLines(text, problems);
  const names = new Set<string>();
  const hashes = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name)) problems.push(`duplicate name "${e.name}"`);
    if (hashes.has(e.sha256)) problems.push(`key "${e.name}": the same hash appears twice`);
    names.add(e.name);
    hashes.add(e.sha256);
  }
  if (problems.length > 0) throw new ApiKeysFileError(problems, source);
  return entries;
}

function parseLines(text: string, problems: string[]): ApiKeyEntry[] {
  const out: ApiKeyEntry[] = [];
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = rawLine.replace(/#.*$/, "").trim();
    if (line === "") return;
    const where = `line ${i + 1}`;
    const fields = line.split(":");
    // The hash is the field after the literal `sha256`; a name may come before it.
    const at = fields.indexOf("sha256");
    if (at < 0 || at > 1) {
      problems.push(`${where}: expected [name:]sha256:<64 hex digits>[:rpm[:streams]]; ${HASH_HINT}`);
      return;
    }
    const sha256 = parseHash(fields[at + 1] ?? "");
    if (sha256 === undefined) {
      problems.push(`${where}: the hash must be 64 hex digits; ${HASH_HINT}`);
      return;
    }
    const name = at === 1 ? (fields[0] ?? "") : `key-${sha256.slice(0, 8)}`;
    if (!NAME.test(name)) problems.push(`${where}: name "${name}" must be 1-64 of A-Z a-z 0-9 . _ -`);
    const rest = fields.slice(at + 2);
    if (rest.length > 2) problems.push(`${where}: too many fields after the hash (rpm and streams at most)`);
    out.push({
      name,
      sha256,
      rpm: parseLimit(rest[0], "rpm", problems, where),
      burst: undefined,
      maxStreams: parseLimit(rest[1], "streams", problems, where),
      disabled: false,
    });
  });
  return out;
}

function parseJson(text: string, problems: string[]): ApiKeyEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error: unknown) {
    problems.push(`invalid JSON (${(error as Error).message})`);
    return [];
  }
  const list = Array.isArray(doc) ? doc : (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) {
    problems.push('JSON must be {"keys": [...]} or an array of keys');
    return [];
  }
  const out: ApiKeyEntry[] = [];
  list.forEach((item: unknown, i) => {
    const where = `keys[${i}]`;
    if (typeof item !== "object" || item === null) {
      problems.push(`${where}: expected an object`);
      return;
    }
    const o = item as Record<string, unknown>;
    const known = new Set(["name", "sha256", "rpm", "burst", "max_streams", "disabled"]);
    for (const k of Object.keys(o)) if (!known.has(k)) problems.push(`${where}: unknown field "${k}"`);
    const sha256 = typeof o["sha256"] === "string" ? parseHash(o["sha256"]) : undefined;
    if (sha256 === undefined) {
      problems.push(`${where}: "sha256" must be 64 hex digits; ${HASH_HINT}`);
      return;
    }
    const name = o["name"] === undefined ? `key-${sha256.slice(0, 8)}` : o["name"];
    if (typeof name !== "string" || !NAME.test(name)) {
      problems.push(`${where}: "name" must be 1-64 of A-Z a-z 0-9 . _ -`);
      return;
    }
    const num = (k: string): number | undefined => {
      const v = o[k];
      if (v === undefined || v === null) return undefined;
      return parseLimit(typeof v === "number" ? String(v) : `${JSON.stringify(v)}`, k, problems, where);
    };
    const disabled = o["disabled"];
    if (disabled !== undefined && typeof disabled !== "boolean") problems.push(`${where}: "disabled" must be true or false`);
    out.push({ name, sha256, rpm: num("rpm"), burst: num("burst"), maxStreams: num("max_streams"), disabled: disabled === true });
  });
  return out;
}

/** Options of {@link ApiKeyStore.open}. */
export interface ApiKeyStoreOptions {
  file: string;
  logger: Logger;
  /** How often the file is re-read for changes; 0: only on {@link ApiKeyStore.reload} (SIGHUP). */
  reloadMs: number;
  /** Told after every reload attempt. */
  onReload?: (outcome: "ok" | "failed", keys: number) => void;
}

/**
 * The gateway's API keys, read from a file at start (a bad file stops the
 * start) and again on {@link reload} (SIGHUP) or when the file changes
 * (polled: a Kubernetes Secret update swaps a symlink, which file watchers
 * miss). A bad file on reload keeps the keys in force and logs why.
 */
export class ApiKeyStore {
  readonly #o: ApiKeyStoreOptions;
  #byHash = new Map<string, ApiKeyEntry>();
  #text = "";
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<boolean> | undefined;

  private constructor(options: ApiKeyStoreOptions) {
    this.#o = options;
  }

  /**
   * Reads the file and starts watching it.
   * @throws ApiKeysFileError or the read error when the file is unusable.
   */
  static async open(options: ApiKeyStoreOptions): Promise<ApiKeyStore> {
    const store = new ApiKeyStore(options);
    const text = await readFile(options.file, "utf8");
    store.#install(text, parseApiKeys(text, options.file));
    if (options.reloadMs > 0) {
      store.#timer = setInterval(() => void store.reload(false), options.reloadMs);
      store.#timer.unref();
    }
    return store;
  }

  /** The entry whose hash matches `key`, if any. */
  lookup(key: string): ApiKeyEntry | undefined {
    // A map lookup on the digest, not a comparison of secrets: timing reveals
    // nothing about a valid key (finding a digest prefix does not help).
    return this.#byHash.get(hashApiKey(key));
  }

  get size(): number {
    return this.#byHash.size;
  }

  /** Names of the keys in force. */
  names(): string[] {
    return [...this.#byHash.values()].map((e) => e.name);
  }

  /**
   * Re-reads the file; resolves true when the keys in force changed.
   * `force` logs and reports even when the text is unchanged (SIGHUP).
   */
  reload(force = true): Promise<boolean> {
    this.#reloading ??= this.#reload(force).finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(force: boolean): Promise<boolean> {
    const { file, logger, onReload } = this.#o;
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error: unknown) {
      logger.error({ err: error, file }, "API keys file unreadable; keeping the keys in force");
      onReload?.("failed", this.size);
      return false;
    }
    if (text === this.#text && !force) return false;
    try {
      const entries = parseApiKeys(text, file);
      const changed = text !== this.#text;
      this.#install(text, entries);
      logger.info({ file, keys: entries.length, names: this.names() }, "API keys reloaded");
      onReload?.("ok", entries.length);
      return changed;
    } catch (error: unknown) {
      // Remember the bad text so a poll does not log the same problem every period.
      this.#text = text;
      logger.error({ err: error, file }, "API keys file invalid; keeping the keys in force");
      onReload?.("failed", this.size);
      return false;
    }
  }

  #install(text: string, entries: readonly ApiKeyEntry[]): void {
    this.#text = text;
    this.#byHash = new Map(entries.map((e) => [e.sha256, e]));
  }

  /** Stops watching; idempotent. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
