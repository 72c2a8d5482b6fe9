import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * What the proxy does with connections:
 * - `forward`: pipes each accepted connection to the target (a healthy link);
 * - `reset`: accepts, then resets at once (RST), like a peer that crashed or a
 *   middlebox that drops the flow;
 * - `blackhole`: accepts and never answers, never forwards, never closes (a
 *   hung peer or a silently dropped route): only deadlines get a caller out.
 */
export type ProxyMode = "forward" | "reset" | "blackhole";

/** A loopback TCP proxy for injecting network faults between services. */
export interface TcpProxy {
  readonly port: number;
  /** `127.0.0.1:<port>`, to hand to a service as the address to dial. */
  readonly address: string;
  /** The mode for new connections; existing ones keep theirs (see {@link resetAll}). */
  mode: ProxyMode;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Resets (RST) every open connection, both sides; returns how many. */
  resetAll(): number;
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on 127.0.0.1 (a free port, or `port`) to `targetHost:targetPort`
 * (loopback only: this is a test tool). The mode can be changed at any time.
 */
export async function startTcpProxy(
  target: { host?: string; port: number },
  options: { mode?: ProxyMode; port?: number } = {},
): Promise<TcpProxy> {
  const targetHost = target.host ?? "127.0.0.1";
  if (targetHost !== "127.0.0.1" && targetHost !== "localhost") {
    throw new Error(`tcp proxy targets loopback only, got ${targetHost}`);
  }
  const sockets = new Set<Socket>();
  let accepted = 0;
  const state = { mode: options.mode ?? ("forward" as ProxyMode) };
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Errors are the point of this tool; they must not crash the test process.
    socket.on("error", () => {});
    // A reset socket's handle can outlive it (a reset racing the peer's own
    // close); it must not keep the test process alive.
    socket.unref();
  };
  /** RST when the connection is still up; a plain destroy otherwise. */
  const reset = (socket: Socket): void => {
    if (socket.destroyed) return;
    if (socket.readyState === "open") socket.resetAndDestroy();
    else socket.destroy();
  };
  const server: Server = createServer((client) => {
    accepted++;
    track(client);
    switch (state.mode) {
      case "reset":
        reset(client);
        return;
      case "blackhole":
        // Read and drop whatever comes so the peer's writes never block: it
        // sees a live connection that simply never answers.
        client.on("data", () => {});
        return;
      case "forward": {
        client.pause();
        const upstream = connect({ host: targetHost, port: target.port });
        track(upstream);
        upstream.setNoDelay(true);
        client.setNoDelay(true);
        upstream.once("connect", () => {
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
        });
        // One side gone: the other goes too, the way it went (reset or close).
        const mirror = (from: Socket, to: Socket): void => {
          from.once("error", () => reset(to));
          from.once("close", () => {
            if (!to.destroyed) to.destroy();
          });
        };
        mirror(client, upstream);
        mirror(upstream, client);
        return;
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  let closing: Promise<void> | undefined;
  return {
    port,
    address: `127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(mode: ProxyMode) {
      state.mode = mode;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    resetAll: () => {
      const n = sockets.size;
      for (const socket of [...sockets]) reset(socket);
      return n;
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of [...sockets]) socket.destroy();
      });
      return closing;
    },
  };
}
