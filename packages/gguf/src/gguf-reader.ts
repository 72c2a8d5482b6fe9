/**
 * Minimal GGUF (v2/v3, little endian) metadata reader. It reads only the header — metadata and
 * tensor infos — through a small sliding buffer, so it is cheap even on multi-GB model files
 * and never passes the file to llama.cpp (which aborts the process on some bad files).
 */
import { open, type FileHandle } from "node:fs/promises";
import { GgufValueType } from "./gguf-writer.ts";

/** A metadata value as read: numbers (bigint for 64-bit ints), strings, booleans or arrays of those. */
export type GgufReadValue = number | bigint | string | boolean | GgufReadValue[];

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: number;
  offset: bigint;
}

export interface GgufHeader {
  version: number;
  tensorCount: number;
  /** Metadata in file order. */
  metadata: Map<string, GgufReadValue>;
  /** Value type of each metadata key (for arrays: Array). */
  metadataTypes: Map<string, number>;
  /** Tensor infos; only when `readTensorInfo` was requested. */
  tensors?: GgufTensorInfo[];
}

/** Thrown when the file is not a readable GGUF. */
export class GgufFormatError extends Error {
  override readonly name = "GgufFormatError";
}

const FIXED_SIZES: Partial<Record<number, number>> = {
  [GgufValueType.Uint8]: 1,
  [GgufValueType.Int8]: 1,
  [GgufValueType.Bool]: 1,
  [GgufValueType.Uint16]: 2,
  [GgufValueType.Int16]: 2,
  [GgufValueType.Uint32]: 4,
  [GgufValueType.Int32]: 4,
  [GgufValueType.Float32]: 4,
  [GgufValueType.Uint64]: 8,
  [GgufValueType.Int64]: 8,
  [GgufValueType.Float64]: 8,
};

/**
 * Sequential reader over a file with a refillable buffer. Reads are synchronous once `ensure`d,
 * so parsing a 128k-entry string array costs no per-element await.
 */
class FileCursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0; // file offset of buf[0]
  private pos = 0; // absolute file offset
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(private readonly handle: FileHandle, private readonly chunk: number) {}

  has(n: number): boolean {
    return this.bufStart + this.buf.length - this.pos >= n;
  }

  async ensure(n: number): Promise<void> {
    const have = this.bufStart + this.buf.length - this.pos;
    if (have >= n) return;
    const keepFrom = this.pos - this.bufStart;
    const want = Math.max(n - have, this.chunk);
    const next = new Uint8Array(have + want);
    next.set(this.buf.subarray(keepFrom));
    const { bytesRead } = await this.handle.read(next, have, want, this.pos + have);
    this.buf = next.subarray(0, have + bytesRead);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
    if (have + bytesRead < n) throw new GgufFormatError(`unexpected end of file at byte ${this.pos} (needed ${n} bytes)`);
  }
  get position(): number { return this.pos; }
  private at(n: number): number { const o = this.pos - this.bufStart; this.pos += n; return o; }
  /** Reads a fixed-size scalar already ensured. */
  fixed(type: number): GgufReadValue {
    switch (type) {
      case GgufValueType.Uint8: return this.view.getUint8(this.at(1));
      case GgufValueType.Int8: return this.view.getInt8(this.at(1));
      case GgufValueType.Bool: return this.view.getUint8(this.at(1)) !== 0;
      case GgufValueType.Uint16: return this.view.getUint16(this.at(2), true);
      case GgufValueType.Int16: return this.view.getInt16(this.at(2), true);
      case GgufValueType.Uint32: return this.view.getUint32(this.at(4), true);
      case GgufValueType.Int32: return this.view.getInt32(this.at(4), true);
      case GgufValueType.Float32: return this.view.getFloat32(this.at(4), true);
      case GgufValueType.Uint64: return this.view.getBigUint64(this.at(8), true);
      case GgufValueType.Int64: return this.view.getBigInt64(this.at(8), true);
      case GgufValueType.Float64: return this.view.getFloat64(this.at(8), true);
      default: throw new GgufFormatError(`type ${type} is not fixed-size`);
    }
  }
  async u32(): Promise<number> { await this.ensure(4); return this.view.getUint32(this.at(4), true); }
  async u64(): Promise<bigint> { await this.ensure(8); return this.view.getBigUint64(this.at(8), true); }
  async bytes(n: number): Promise<Uint8Array> { await this.ensure(n); const o = this.at(n); return this.buf.subarray(o, o + n); }
  async str(): Promise<string> {
    await this.ensure(8);
    const len = this.view.getBigUint64(this.pos - this.bufStart, true);
    if (len > 1n << 30n) throw new GgufFormatError(`string length ${len} at byte ${this.pos} is implausible`);
    await this.ensure(8 + Number(len));
    return this.strSync();
  }
  /** Skips `n` bytes (refilling as needed). */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      const avail = this.bufStart + this.buf.length - this.pos;
      if (avail === 0) await this.ensure(Math.min(n, this.chunk));
      const step = Math.min(n, this.bufStart + this.buf.length - this.pos);
      this.pos += step;
      n -= step;
    }
  }
  /** Skips a string without decoding it. */
  async skipStr(): Promise<void> {
    await this.ensure(8);
    const len = this.view.getBigUint64(this.at(8), true);
    if (len > 1n << 30n) throw new GgufFormatError(`string length ${len} at byte ${this.pos - 8} is implausible`);
    await this.skip(Number(len));
  }
  /** Reads a string whose length prefix and bytes are already buffered, or returns undefined. */
  tryStr(): string | undefined {
    if (!this.has(8)) return undefined;
    const len = this.view.getBigUint64(this.pos - this.bufStart, true);
    if (len > 1n << 30n || !this.has(8 + Number(len))) return undefined;
    return this.strSync();
  }
  private strSync(): string {
    const len = Number(this.view.getBigUint64(this.at(8), true));
    const o = this.at(len);
    return this.decoder.decode(this.buf.subarray(o, o + len));
  }
}

/** Advances past a value without materializing it (used for skipped keys such as merges). */
async function skipValue(c: FileCursor, type: number): Promise<void> {
  const size = FIXED_SIZES[type];
  if (size !== undefined) return c.skip(size);
  if (type === GgufValueType.String) return c.skipStr();
  if (type === GgufValueType.Array) {
    const itemType = await c.u32();
    const count = await c.u64();
    if (count > 1n << 28n) throw new GgufFormatError(`array length ${count} is implausible`);
    const itemSize = FIXED_SIZES[itemType];
    if (itemSize !== undefined) return c.skip(itemSize * Number(count));
    for (let i = 0n; i < count; i++) await skipValue(c, itemType);
    return;
  }
  throw new GgufFormatError(`unknown GGUF value type ${type} at byte ${c.position - 4}`);
}

async function readValue(c: FileCursor, type: number): Promise<GgufReadValue> {
  const size = FIXED_SIZES[type];
  if (size !== undefined) {
    await c.ensure(size);
    return c.fixed(type);
  }
  if (type === GgufValueType.String) return c.str();
  if (type === GgufValueType.Array) {
    const itemType = await c.u32();
    const count = await c.u64();
    if (count > 1n << 28n) throw new GgufFormatError(`array length ${count} is implausible`);
    const out: GgufReadValue[] = new Array<GgufReadValue>(Number(count));
    const itemSize = FIXED_SIZES[itemType];
    for (let i = 0; i < out.length; i++) {
      if (itemSize !== undefined) {
        if (!c.has(itemSize)) await c.ensure(itemSize);
        out[i] = c.fixed(itemType);
      } else if (itemType === GgufValueType.String) {
        out[i] = c.tryStr() ?? (await c.str());
      } else {
        out[i] = await readValue(c, itemType);
      }
    }
    return out;
  }
  throw new GgufFormatError(`unknown GGUF value type ${type} at byte ${c.position - 4}`);
}

/**
 * Reads the GGUF header of `path`. Options: `readTensorInfo` (default false) also reads tensor
 * infos; `skipKeys` (default none) are stepped over without being decoded — e.g. the 280k
 * "tokenizer.ggml.merges" of a Llama-3 vocabulary — but still listed in `metadataTypes`.
 */
export async function readGgufHeader(
  path: string,
  options: { readTensorInfo?: boolean; skipKeys?: readonly string[] } = {},
): Promise<GgufHeader> {
  const handle = await open(path, "r");
  try {
    const c = new FileCursor(handle, 1 << 20);
    const magic = new TextDecoder().decode(await c.bytes(4).catch(() => new Uint8Array(0)));
    if (magic !== "GGUF") throw new GgufFormatError(`${path} is not a GGUF file (magic ${JSON.stringify(magic)})`);
    const version = await c.u32();
    if (version !== 2 && version !== 3) throw new GgufFormatError(`unsupported GGUF version ${version}`);
    const tensorCount = Number(await c.u64());
    const kvCount = Number(await c.u64());
    const metadata = new Map<string, GgufReadValue>();
    const metadataTypes = new Map<string, number>();
    const skip = new Set(options.skipKeys ?? []);
    for (let i = 0; i < kvCount; i++) {
      const key = await c.str();
      const type = await c.u32();
      metadataTypes.set(key, type);
      if (skip.has(key)) await skipValue(c, type);
      else metadata.set(key, await readValue(c, type));
    }
    const header: GgufHeader = { version, tensorCount, metadata, metadataTypes };
    if (options.readTensorInfo) {
      const tensors: GgufTensorInfo[] = [];
      for (let i = 0; i < tensorCount; i++) {
        const name = await c.str();
        const nDims = await c.u32();
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++) dims.push(Number(await c.u64()));
        const type = await c.u32();
        const offset = await c.u64();
        tensors.push({ name, dims, type, offset });
      }
      header.tensors = tensors;
    }
    return header;
  } finally {
    await handle.close();
  }
}
