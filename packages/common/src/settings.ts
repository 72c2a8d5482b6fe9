/**
 * Typed reading of a service's flags and environment, used only by each
 * service's `config.ts`. A setting `max-queue` is read from `--max-queue V`
 * (or `--max-queue=V`) first, then from `SMOLLM_MAX_QUEUE`, then its default.
 * Every problem is collected and reported at once by {@link Settings.finish}.
 */

/** Where settings come from; normally `process.argv.slice(2)` and `process.env`. */
export interface SettingsSource {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

/** A configuration that cannot be used; the message lists every problem. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

interface Range {
  min?: number;
  max?: number;
}

export class Settings {
  readonly #flags = new Map<string, string>();
  readonly #used = new Set<string>();
  readonly #problems: string[] = [];
  readonly #env: SettingsSource["env"];
  readonly #prefix: string;

  /** @param prefix environment variable prefix; default `SMOLLM_`. */
  constructor(source: SettingsSource, prefix = "SMOLLM_") {
    this.#env = source.env;
    this.#prefix = prefix;
    const argv = source.argv;
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i] ?? "";
      if (!arg.startsWith("--")) {
        this.#problems.push(`unexpected argument "${arg}"`);
        continue;
      }
      const eq = arg.indexOf("=");
      if (eq > 0) {
        this.#flags.set(arg.slice(2, eq), arg.slice(eq + 1));
      } else if (arg.startsWith("--no-")) {
        this.#flags.set(arg.slice(5), "false");
      } else {
        const next = argv[i + 1];
        if (next !== undefined && !next.startsWith("--")) {
          this.#flags.set(arg.slice(2), next);
          i++;
        } else {
          this.#flags.set(arg.slice(2), "true");
        }
      }
    }
  }

  /** The environment variable name of a setting, e.g. `max-queue` → `SMOLLM_MAX_QUEUE`. */
  envName(name: string): string {
    return this.#prefix + name.toUpperCase().replaceAll("-", "_");
  }

  #raw(name: string): string | undefined {
    this.#used.add(name);
    const flag = this.#flags.get(name);
    if (flag !== undefined) return flag;
    const env = this.#env[this.envName(name)];
    return env === undefined || env === "" ? undefined : env;
  }

  /** Whether the setting was given at all (flag or environment). */
  has(name: string): boolean {
    return this.#raw(name) !== undefined;
  }

  string(name: string, fallback: string): string {
    return this.#raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.#raw(name);
  }

  number(name: string, fallback: number, range: Range = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value)) {
      this.#problems.push(`--${name} (${this.envName(name)}) must be a number, got "${raw}"`);
      return fallback;
    }
    return this.#checkRange(name, value, range) ? value : fallback;
  }

  int(name: string, fallback: number, range: Range = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isSafeInteger(value)) {
      this.#problems.push(`--${name} (${this.envName(name)}) must be an integer, got "${raw}"`);
      return fallback;
    }
    return this.#checkRange(name, value, range) ? value : fallback;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const v = raw.toLowerCase();
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    this.#problems.push(`--${name} (${this.envName(name)}) must be true or false, got "${raw}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if ((values as readonly string[]).includes(raw)) return raw as T;
    this.#problems.push(`--${name} (${this.envName(name)}) must be one of ${values.join(", ")}, got "${raw}"`);
    return fallback;
  }

  /** A comma-separated list; empty items are dropped. */
  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.#raw(name);
    if (raw === undefined) return [...fallback];
    return raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  }

  /** Records a problem found by the caller's own cross-field checks. */
  problem(message: string): void {
    this.#problems.push(message);
  }

  /** Throws a {@link ConfigError} listing every problem and unknown flag. */
  finish(): void {
    for (const flag of this.#flags.keys()) {
      if (!this.#used.has(flag)) this.#problems.push(`unknown flag --${flag}`);
    }
    if (this.#problems.length > 0) throw new ConfigError(this.#problems);
  }

  #checkRange(name: string, value: number, range: Range): boolean {
    if ((range.min !== undefined && value < range.min) || (range.max !== undefined && value > range.max)) {
      const bounds = `${range.min ?? "-∞"}..${range.max ?? "∞"}`;
      this.#problems.push(`--${name} (${this.envName(name)}) must be in ${bounds}, got ${value}`);
      return false;
    }
    return true;
  }
}
