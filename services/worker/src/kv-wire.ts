/**
 * KV block streams on the wire (smollm.internal.v1.KvTransferService): a
 * header naming the cells and their format, chunks of the block stream with a
 * CRC-32 each, and a trailer with the SHA-256 of the whole stream. The sender
 * reads from a state file, the receiver writes into a KvAssembler; neither
 * holds a block in memory. gRPC's flow control is the back-pressure: the
 * sender's adapter waits for the stream to drain, the receiver pulls.
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { ClusterError } from "@smollm/common";
import type { KvBlockHeader, KvChunk, KvProgress, KvTrailer } from "@smollm/proto";
import { KvAssembler, blockStreamBytes, readBlockStream, type KvFormat, type SequenceStateFile } from "./kv-state-file.ts";

/** One message of a block stream, as both PrefillBlock and ExportPrefix send it. */
export type KvStreamEvent =
  | { case: "progress"; value: Omit<KvProgress, "$typeName" | "$unknown"> }
  | { case: "header"; value: Omit<KvBlockHeader, "$typeName" | "$unknown" | "layers"> & { layers: KvWireLayer[] } }
  | { case: "chunk"; value: Omit<KvChunk, "$typeName" | "$unknown"> }
  | { case: "trailer"; value: Omit<KvTrailer, "$typeName" | "$unknown"> };

type KvWireLayer = { kType: number; kRowBytes: bigint; vType: number; vRowBytes: bigint; vElementBytes: number; vEmbd: number };

/** A received message, as the generated client yields it. */
export interface KvStreamMessage {
  event:
    | { case: "progress"; value: KvProgress }
    | { case: "header"; value: KvBlockHeader }
    | { case: "chunk"; value: KvChunk }
    | { case: "trailer"; value: KvTrailer }
    | { case: undefined; value?: undefined };
}

/** A corrupt, short or inconsistent KV stream: the sender's fault, and worth trying elsewhere. */
export class KvStreamError extends ClusterError {
  constructor(message: string) {
    super("unavailable", message);
  }
}

export function formatToWire(format: KvFormat): KvWireLayer[] {
  return format.layers.map((l) => ({
    kType: l.kType,
    kRowBytes: BigInt(l.kRowBytes),
    vType: l.vType,
    vRowBytes: BigInt(l.vRowBytes),
    vElementBytes: l.vElementBytes,
    vEmbd: l.vEmbd,
  }));
}

export function formatFromWire(header: KvBlockHeader): KvFormat {
  return {
    vTrans: header.vTrans,
    layers: header.layers.map((l) => ({
      kType: l.kType,
      kRowBytes: Number(l.kRowBytes),
      vType: l.vType,
      vRowBytes: Number(l.vRowBytes),
      vElementBytes: l.vElementBytes,
      vEmbd: l.vEmbd,
    })),
  };
}

/**
 * The header, chunks and trailer of the cells at [first, first + count) of a
 * saved state. `onChunk` is told each chunk's size (metrics).
 */
export async function* blockStreamEvents(
  state: SequenceStateFile,
  first: number,
  count: number,
  options: { chunkBytes: number; computeMs: number; reusedTokens: number; onChunk?: (bytes: number) => void },
): AsyncGenerator<{ event: KvStreamEvent }, void, undefined> {
  const format = state.format;
  if (format === undefined) throw new ClusterError("internal", "the saved state holds no cells");
  const total = blockStreamBytes(format, count);
  yield {
    event: {
      case: "header",
      value: {
        firstPosition: first,
        cellCount: count,
        vTrans: format.vTrans,
        layers: formatToWire(format),
        totalBytes: BigInt(total),
        computeMs: options.computeMs,
        reusedTokens: options.reusedTokens,
      },
    },
  };
  const hash = createHash("sha256");
  let offset = 0;
  for await (const data of readBlockStream(state, first, count, options.chunkBytes)) {
    hash.update(data);
    yield { event: { case: "chunk", value: { offset: BigInt(offset), data, crc32: crc32(data) } } };
    offset += data.length;
    options.onChunk?.(data.length);
  }
  yield { event: { case: "trailer", value: { sha256: hash.digest() } } };
}

/**
 * Writes one incoming block stream into an assembler as block `id`, checking
 * that it holds exactly positions [first, first + count), every chunk's CRC,
 * the order of chunks and the final SHA-256.
 */
export class BlockReceiver {
  readonly #assembler: KvAssembler;
  readonly #id: number;
  readonly #first: number;
  readonly #count: number;
  #total = -1;
  #received = 0;
  #hash = createHash("sha256");
  #done = false;
  /** From the header: the sender's compute time and reused tokens. */
  computeMs = 0;
  reusedTokens = 0;
  #headerAt = 0;
  #trailerAt = 0;

  constructor(assembler: KvAssembler, id: number, first: number, count: number) {
    this.#assembler = assembler;
    this.#id = id;
    this.#first = first;
    this.#count = count;
  }

  get done(): boolean {
    return this.#done;
  }

  get bytes(): number {
    return this.#received;
  }

  /** From the header to the trailer: how long moving the bytes took (computing excluded). */
  get streamMs(): number {
    return this.#trailerAt - this.#headerAt;
  }

  /** Takes the next message; resolves true after the trailer. */
  async accept(message: KvStreamMessage): Promise<boolean> {
    const event = message.event;
    if (this.#done) throw new KvStreamError("data after the trailer");
    switch (event.case) {
      case "progress":
        return false;
      case "header": {
        const h = event.value;
        if (this.#total >= 0) throw new KvStreamError("two headers in one stream");
        if (h.firstPosition !== this.#first || h.cellCount !== this.#count) {
          throw new KvStreamError(`stream holds positions ${h.firstPosition}+${h.cellCount}, expected ${this.#first}+${this.#count}`);
        }
        const format = formatFromWire(h);
        this.#total = this.#assembler.addBlock(this.#id, this.#first, this.#count, format);
        if (BigInt(this.#total) !== h.totalBytes) throw new KvStreamError(`stream announces ${h.totalBytes} bytes, the format gives ${this.#total}`);
        this.computeMs = h.computeMs;
        this.reusedTokens = h.reusedTokens;
        this.#headerAt = performance.now();
        return false;
      }
      case "chunk": {
        const c = event.value;
        if (this.#total < 0) throw new KvStreamError("chunk before the header");
        if (c.offset !== BigInt(this.#received)) throw new KvStreamError(`chunk at ${c.offset}, expected ${this.#received}`);
        if (crc32(c.data) !== c.crc32) throw new KvStreamError(`chunk at ${c.offset}: CRC-32 mismatch`);
        await this.#assembler.write(this.#id, this.#received, c.data);
        this.#hash.update(c.data);
        this.#received += c.data.length;
        return false;
      }
      case "trailer": {
        if (this.#total < 0 || this.#received !== this.#total) {
          throw new KvStreamError(`trailer after ${this.#received} of ${this.#total} bytes`);
        }
        if (!this.#hash.digest().equals(event.value.sha256)) throw new KvStreamError("SHA-256 of the block stream does not match");
        this.#done = true;
        this.#trailerAt = performance.now();
        return true;
      }
      default:
        return false;
    }
  }
}
