import type { ServerResponse } from "node:http";
import { CancelledError } from "@smollm/common";

/**
 * Writes a chunk. Returns nothing while the socket keeps up; when its buffer
 * is full, a promise that resolves on `drain`, resolves when the response
 * closes (the caller's abort handling takes over), or rejects with a
 * CancelledError after `stallMs` — a client that stopped reading must not make
 * the gateway buffer a whole completion. While the caller awaits, it does not
 * read the worker's stream, so gRPC flow control holds the worker back too.
 */
export function writeChunk(res: ServerResponse, chunk: string, stallMs: number): Promise<void> | undefined {
  if (res.write(chunk)) return undefined;
  return waitForDrain(res, stallMs);
}

function waitForDrain(res: ServerResponse, stallMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      res.off("drain", onDrain);
      res.off("close", onDrain);
    };
    const onDrain = (): void => {
      settle();
      resolve();
    };
    const timer = setTimeout(() => {
      settle();
      reject(new CancelledError(`client stopped reading for ${stallMs} ms`));
    }, stallMs);
    res.once("drain", onDrain);
    res.once("close", onDrain);
  });
}
