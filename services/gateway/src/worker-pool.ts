import type { ChannelCredentials } from "@grpc/grpc-js";
import { WorkerService, createClient, type ServiceClient } from "@smollm/proto";

/** A worker's typed gRPC client. */
export type WorkerClient = ServiceClient<(typeof WorkerService)["method"]>;

/**
 * One gRPC client (one HTTP/2 channel) per worker address, created on first
 * use. Requests to a worker share its channel; grpc-js lets an unused channel
 * go idle, so an address that disappeared costs a map entry, not a connection.
 */
export class WorkerPool {
  readonly #clients = new Map<string, WorkerClient>();
  readonly #credentials: ChannelCredentials | undefined;
  #closed = false;

  /** @param credentials of every worker channel (mutual TLS); plaintext when absent. */
  constructor(credentials?: ChannelCredentials) {
    this.#credentials = credentials;
  }

  get(address: string): WorkerClient {
    let client = this.#clients.get(address);
    if (client === undefined) {
      if (this.#closed) throw new Error("worker pool is closed");
      client = createClient(WorkerService, address, this.#credentials === undefined ? {} : { credentials: this.#credentials });
      this.#clients.set(address, client);
    }
    return client;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Closes every channel; idempotent. */
  close(): void {
    this.#closed = true;
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
