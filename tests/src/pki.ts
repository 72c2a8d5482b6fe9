import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files made by {@link makePki}: the cluster's CA and one identity it signs, and the same from a rogue CA. */
export interface Pki {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  rogueCa: string;
  rogueCert: string;
  rogueKey: string;
}

/**
 * A CA and one certificate it signs, for server and client use, naming
 * 127.0.0.1, localhost and `dnsNames`; and the same from a rogue CA. Made
 * with openssl in a temporary directory (the caller removes `dir`).
 */
export function makePki(dnsNames: readonly string[] = []): Pki {
  const dir = mkdtempSync(join(tmpdir(), "smollm-pki-"));
  const ssl = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const names = ["IP:127.0.0.1", "DNS:localhost", ...dnsNames.map((n) => `DNS:${n}`)].join(",");
  writeFileSync(join(dir, "ext.cnf"), `subjectAltName=${names}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  for (const who of ["cluster", "rogue"]) {
    ssl("req", "-x509", ...ec, "-keyout", `${who}-ca.key`, "-out", `${who}-ca.crt`, "-days", "1", "-subj", `/CN=${who} test CA`);
    ssl("req", ...ec, "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${who} service`);
    ssl("x509", "-req", "-in", `${who}.csr`, "-CA", `${who}-ca.crt`, "-CAkey", `${who}-ca.key`, "-CAcreateserial", "-out", `${who}.crt`, "-days", "1", "-extfile", "ext.cnf");
  }
  const p = (f: string): string => join(dir, f);
  return { dir, ca: p("cluster-ca.crt"), cert: p("cluster.crt"), key: p("cluster.key"), rogueCa: p("rogue-ca.crt"), rogueCert: p("rogue.crt"), rogueKey: p("rogue.key") };
}
