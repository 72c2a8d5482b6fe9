import { accessSync, constants } from "node:fs";
import type { Settings } from "./settings.ts";

/** PEM files of a TLS identity, and of the CA that verifies peers (mutual TLS). */
export interface TlsFiles {
  /** Certificate chain, PEM. */
  readonly certFile: string;
  /** Private key, PEM. */
  readonly keyFile: string;
  /** CA bundle that peers' certificates must chain to, PEM; required for mutual TLS. */
  readonly caFile?: string;
}

/** Options of {@link readTlsSettings}. */
export interface TlsSettingsOptions {
  /** Flag prefix: `tls` reads `--tls-cert`, `--tls-key`, `--tls-ca`. */
  prefix: string;
  /** Whether `--<prefix>-ca` is read and required with the others (mutual TLS). */
  withCa: boolean;
}

/**
 * Reads a TLS identity from `--<prefix>-cert` / `--<prefix>-key` (and
 * `--<prefix>-ca` for mutual TLS), for a service's `config.ts`. All or none
 * must be given; each must be a readable file. Undefined when none is given
 * (plaintext). Problems are recorded on `s`, reported by `s.finish()`.
 */
export function readTlsSettings(s: Settings, options: TlsSettingsOptions): TlsFiles | undefined {
  const names = ["cert", "key", ...(options.withCa ? ["ca"] : [])].map((n) => `${options.prefix}-${n}`);
  const values = names.map((n) => s.optionalString(n));
  const given = values.filter((v) => v !== undefined).length;
  if (given === 0) return undefined;
  if (given < names.length) {
    s.problem(`${names.map((n) => `--${n}`).join(", ")} go together: give all of them or none`);
    return undefined;
  }
  names.forEach((name, i) => {
    try {
      accessSync(values[i] as string, constants.R_OK);
    } catch {
      s.problem(`--${name} (${s.envName(name)}): cannot read "${values[i] ?? ""}"`);
    }
  });
  const [certFile, keyFile, caFile] = values as string[];
  return caFile === undefined ? { certFile: certFile ?? "", keyFile: keyFile ?? "" } : { certFile: certFile ?? "", keyFile: keyFile ?? "", caFile };
}
