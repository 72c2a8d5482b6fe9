import { readFileSync } from "node:fs";
import { checkServerIdentity } from "node:tls";
import { ServerCredentials, credentials, type ChannelCredentials } from "@grpc/grpc-js";
import type { TlsFiles } from "@smollm/common";

/**
 * Credentials of a gRPC server: plaintext without `files`; TLS with them;
 * mutual TLS when `files.caFile` is set (clients must present a certificate
 * that chains to it, or the handshake fails). Files are read once: rotating
 * certificates means restarting the process, which drains cleanly.
 */
export function serverCredentials(files: TlsFiles | undefined): ServerCredentials {
  if (files === undefined) return ServerCredentials.createInsecure();
  const ca = files.caFile === undefined ? null : readFileSync(files.caFile);
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: readFileSync(files.certFile), private_key: readFileSync(files.keyFile) }],
    ca !== null,
  );
}

/** Options of {@link channelCredentials}. */
export interface ChannelTlsOptions {
  /**
   * The name the server's certificate must carry, when it is not the dialled
   * host (e.g. one internal name for every worker pod); default the host.
   */
  serverName?: string | undefined;
}

/**
 * Credentials of a gRPC client: plaintext without `files`; else TLS that
 * trusts `files.caFile` (the system roots without it) and presents the
 * `certFile`/`keyFile` identity, for servers that require mutual TLS.
 */
export function channelCredentials(files: TlsFiles | undefined, options: ChannelTlsOptions = {}): ChannelCredentials {
  if (files === undefined) return credentials.createInsecure();
  const serverName = options.serverName;
  return credentials.createSsl(
    files.caFile === undefined ? null : readFileSync(files.caFile),
    readFileSync(files.keyFile),
    readFileSync(files.certFile),
    serverName === undefined ? {} : { checkServerIdentity: (_host, cert) => checkServerIdentity(serverName, cert) },
  );
}
