/**
 * llama.cpp's sequence state file, read and written in TypeScript, so that KV
 * computed on several workers can be cut, moved and put together into one
 * sequence (block-parallel prefill, prefix transfer).
 *
 * The layout is version 3 as node-llama-cpp 3.21.1 writes it with
 * `LlamaContextSequence.saveStateToFile` (llama.cpp `llama_state_seq_save_file`
 * → `llama_kv_cache::state_write`), little-endian:
 *
 *     u32 magic 'ggsq' (0x67677371), u32 version 3, u32 n_tokens, n_tokens × i32 token
 *     u32 n_stream                         — the context's KV streams: one per sequence
 *     per stream: u32 cell_count; only when > 0:
 *       cell_count × {i32 pos, u32 n_seq (= 1), n_seq × i32 seq_id}
 *       u32 v_trans, u32 n_layer
 *       per layer: i32 k_type, u64 k_row_bytes, cell_count × k_row_bytes       (K, one row per cell)
 *       v_trans 0, per layer: i32 v_type, u64 v_row_bytes, cell_count rows      (flash attention)
 *       v_trans 1, per layer: i32 v_type, u32 el_bytes, u32 n_embd_v, n_embd_v × cell_count elements
 *
 * Cells are written in cache-cell order, which is position order only in a
 * fresh stream, so everything here goes by the saved positions. A sequence's
 * file holds exactly one non-empty stream, but `n_stream` is the saving
 * context's sequence count and loading checks it against its own, which is
 * why assembled files are written with the target's stream count.
 *
 * Between workers KV travels as a "block stream": the cells of one position
 * range [first, first + count) in a canonical order — per layer the K rows,
 * then per layer the V rows (or, transposed, per layer and per V element the
 * cells' elements) — so the receiver can write every byte straight to its
 * place in the assembled file without holding a block in memory.
 */
import { open, type FileHandle } from "node:fs/promises";

export const STATE_MAGIC = 0x67677371;
export const STATE_VERSION = 3;

/** Storage of one layer's K and V in the cache. */
export interface KvLayerFormat {
  readonly kType: number;
  readonly kRowBytes: number;
  readonly vType: number;
  /** Bytes of one cell's V: the row size, or element size × vEmbd when transposed. */
  readonly vRowBytes: number;
  /** Transposed V only (else 0). */
  readonly vElementBytes: number;
  /** Transposed V only (else 0). */
  readonly vEmbd: number;
}

/** How a context stores KV; state files only load into a context with the same format. */
export interface KvFormat {
  /** V stored transposed: llama.cpp does so without flash attention. */
  readonly vTrans: boolean;
  readonly layers: readonly KvLayerFormat[];
}

/** A parsed sequence state file: its metadata and where its data lies. */
export interface SequenceStateFile {
  readonly path: string;
  readonly fileSize: number;
  readonly tokens: readonly number[];
  readonly nStream: number;
  /** Cells of the (only) non-empty stream, in file order. */
  readonly cellCount: number;
  /** Position of each cell, in file order. */
  readonly positions: Int32Array;
  /** Undefined when the file holds no cells. */
  readonly format: KvFormat | undefined;
  /** File offset of each layer's K rows. */
  readonly kData: readonly number[];
  /** File offset of each layer's V data. */
  readonly vData: readonly number[];
}

/** A malformed or unsupported state file. */
export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

/** Bytes of one cell over all layers (K + V). */
export function bytesPerCell(format: KvFormat): number {
  let n = 0;
  for (const layer of format.layers) n += layer.kRowBytes + layer.vRowBytes;
  return n;
}

export function sameFormat(a: KvFormat, b: KvFormat): boolean {
  if (a.vTrans !== b.vTrans || a.layers.length !== b.layers.length) return false;
  return a.layers.every((x, i) => {
    const y = b.layers[i];
    return (
      y !== undefined &&
      x.kType === y.kType &&
      x.kRowBytes === y.kRowBytes &&
      x.vType === y.vType &&
      x.vRowBytes === y.vRowBytes &&
      x.vElementBytes === y.vElementBytes &&
      x.vEmbd === y.vEmbd
    );
  });
}

/** Positioned reads that fail loudly on a short file. */
class Reader {
  readonly #fh: FileHandle;
  readonly #size: number;
  readonly #path: string;

  constructor(fh: FileHandle, size: number, path: string) {
    this.#fh = fh;
    this.#size = size;
    this.#path = path;
  }

  async bytes(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.#size) {
      throw new StateFileError(`${this.#path}: truncated (needs ${offset + length} bytes, has ${this.#size})`);
    }
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.#fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new StateFileError(`${this.#path}: unexpected end of file`);
      done += bytesRead;
    }
    return buf;
  }
}

/** Reads a sequence state file's metadata (tokens, cell positions, KV format, data offsets); the KV data stays on disk. */
export async function readSequenceState(path: string): Promise<SequenceStateFile> {
  const fh = await open(path, "r");
  try {
    const fileSize = (await fh.stat()).size;
    const r = new Reader(fh, fileSize, path);
    let at = 0;
    const head = await r.bytes(0, 12);
    if (head.readUInt32LE(0) !== STATE_MAGIC) throw new StateFileError(`${path}: not a sequence state file`);
    const version = head.readUInt32LE(4);
    if (version !== STATE_VERSION) throw new StateFileError(`${path}: state file version ${version}, only ${STATE_VERSION} is supported`);
    const nTokens = head.readUInt32LE(8);
    at = 12;
    const tokenBytes = await r.bytes(at, 4 * nTokens + 4);
    const tokens: number[] = new Array<number>(nTokens);
    for (let i = 0; i < nTokens; i++) tokens[i] = tokenBytes.readInt32LE(4 * i);
    const nStream = tokenBytes.readUInt32LE(4 * nTokens);
    at += 4 * nTokens + 4;
    let cellCount = 0;
    let positions = new Int32Array(0);
    let format: KvFormat | undefined;
    const kData: number[] = [];
    const vData: number[] = [];
    for (let s = 0; s < nStream; s++) {
      const count = (await r.bytes(at, 4)).readUInt32LE(0);
      at += 4;
      if (count === 0) continue;
      if (format !== undefined) throw new StateFileError(`${path}: more than one non-empty stream (not a single sequence's state)`);
      cellCount = count;
      positions = new Int32Array(count);
      // Cell metadata: 12 bytes per cell when each cell belongs to one sequence, as in a sequence's file.
      const meta = await r.bytes(at, 12 * count);
      for (let i = 0; i < count; i++) {
        const nSeq = meta.readUInt32LE(12 * i + 4);
        if (nSeq !== 1) throw new StateFileError(`${path}: cell ${i} belongs to ${nSeq} sequences`);
        positions[i] = meta.readInt32LE(12 * i);
      }
      at += 12 * count;
      const kv = await r.bytes(at, 8);
      const vTrans = kv.readUInt32LE(0) === 1;
      const nLayer = kv.readUInt32LE(4);
      at += 8;
      const k: { type: number; row: number }[] = [];
      for (let l = 0; l < nLayer; l++) {
        const h = await r.bytes(at, 12);
        const row = Number(h.readBigUInt64LE(4));
        k.push({ type: h.readInt32LE(0), row });
        kData.push(at + 12);
        at += 12 + row * count;
      }
      const layers: KvLayerFormat[] = [];
      for (let l = 0; l < nLayer; l++) {
        const h = await r.bytes(at, 12);
        const kl = k[l]!;
        if (!vTrans) {
          const row = Number(h.readBigUInt64LE(4));
          layers.push({ kType: kl.type, kRowBytes: kl.row, vType: h.readInt32LE(0), vRowBytes: row, vElementBytes: 0, vEmbd: 0 });
          vData.push(at + 12);
          at += 12 + row * count;
        } else {
          const el = h.readUInt32LE(4);
          const embd = h.readUInt32LE(8);
          layers.push({ kType: kl.type, kRowBytes: kl.row, vType: h.readInt32LE(0), vRowBytes: el * embd, vElementBytes: el, vEmbd: embd });
          vData.push(at + 12);
          at += 12 + el * embd * count;
        }
      }
      format = { vTrans, layers };
    }
    if (at !== fileSize) throw new StateFileError(`${path}: ${fileSize - at} unexpected bytes after the state`);
    return { path, fileSize, tokens, nStream, cellCount, positions, format, kData, vData };
  } finally {
    await fh.close();
  }
}

/** A byte range of a file. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** Total size of a block stream of `count` cells. */
export function blockStreamBytes(format: KvFormat, count: number): number {
  return bytesPerCell(format) * count;
}

/**
 * The file ranges that make up the block stream of the cells at positions
 * [first, first + count), in stream order. Throws unless the file holds each
 * of those positions exactly once.
 */
export function blockStreamRanges(state: SequenceStateFile, first: number, count: number): ByteRange[] {
  const format = state.format;
  if (count === 0) return [];
  if (format === undefined) throw new StateFileError(`${state.path}: holds no cells, positions ${first}..${first + count - 1} wanted`);
  // Cell index of each wanted position.
  const cellOf = new Int32Array(count).fill(-1);
  for (let i = 0; i < state.cellCount; i++) {
    const p = state.positions[i]! - first;
    if (p < 0 || p >= count) continue;
    if (cellOf[p] !== -1) throw new StateFileError(`${state.path}: position ${p + first} is held by two cells`);
    cellOf[p] = i;
  }
  const missing = cellOf.indexOf(-1);
  if (missing !== -1) throw new StateFileError(`${state.path}: position ${first + missing} is not in the state`);
  // Runs of consecutive cells (usually one run: a fresh stream fills cells in position order).
  const runs: { cell: number; n: number }[] = [];
  for (let p = 0; p < count; p++) {
    const last = runs[runs.length - 1];
    const cell = cellOf[p]!;
    if (last !== undefined && last.cell + last.n === cell) last.n++;
    else runs.push({ cell, n: 1 });
  }
  const out: ByteRange[] = [];
  const push = (offset: number, length: number): void => {
    const last = out[out.length - 1];
    if (last !== undefined && last.offset + last.length === offset) out[out.length - 1] = { offset: last.offset, length: last.length + length };
    else out.push({ offset, length });
  };
  format.layers.forEach((layer, l) => {
    for (const run of runs) push(state.kData[l]! + run.cell * layer.kRowBytes, run.n * layer.kRowBytes);
  });
  format.layers.forEach((layer, l) => {
    if (!format.vTrans) {
      for (const run of runs) push(state.vData[l]! + run.cell * layer.vRowBytes, run.n * layer.vRowBytes);
    } else {
      for (let j = 0; j < layer.vEmbd; j++) {
        for (const run of runs) push(state.vData[l]! + (j * state.cellCount + run.cell) * layer.vElementBytes, run.n * layer.vElementBytes);
      }
    }
  });
  return out;
}

/**
 * Reads the block stream of positions [first, first + count) from a state
 * file in chunks of at most `chunkBytes` (only the last one smaller).
 */
export async function* readBlockStream(
  state: SequenceStateFile,
  first: number,
  count: number,
  chunkBytes: number,
): AsyncGenerator<Buffer, void, undefined> {
  const ranges = blockStreamRanges(state, first, count);
  const fh = await open(state.path, "r");
  try {
    const r = new Reader(fh, state.fileSize, state.path);
    let chunk = Buffer.allocUnsafe(chunkBytes);
    let filled = 0;
    for (const range of ranges) {
      let done = 0;
      while (done < range.length) {
        const n = Math.min(range.length - done, chunkBytes - filled);
        const part = await r.bytes(range.offset + done, n);
        part.copy(chunk, filled);
        filled += n;
        done += n;
        if (filled === chunkBytes) {
          yield chunk;
          chunk = Buffer.allocUnsafe(chunkBytes);
          filled = 0;
        }
      }
    }
    if (filled > 0) yield chunk.subarray(0, filled);
  } finally {
    await fh.close();
  }
}

/** One part of a block stream and where it goes in the assembled file. */
interface Segment {
  readonly streamOffset: number;
  readonly fileOffset: number;
  readonly length: number;
}

/**
 * Writes one sequence state file out of blocks of cells that arrive as block
 * streams, in any order and concurrently: positions [0, tokens.length), each
 * block a contiguous range. Every chunk goes straight to its place in the
 * file; `finish()` writes the metadata once every block is complete.
 */
export class KvAssembler {
  readonly path: string;
  readonly #tokens: readonly number[];
  readonly #nStream: number;
  #format: KvFormat | undefined;
  #fh: FileHandle | undefined;
  #opening: Promise<FileHandle> | undefined;
  /** File offset of each layer's K header and V header. */
  #kHeader: number[] = [];
  #vHeader: number[] = [];
  readonly #blocks = new Map<number, { first: number; count: number; segments: Segment[]; received: number; total: number }>();
  #bytesWritten = 0;

  /**
   * @param tokens every token of the assembled sequence, in position order
   * @param nStream the loading context's stream count (its `sequences`)
   */
  constructor(path: string, tokens: readonly number[], nStream: number, format?: KvFormat) {
    this.path = path;
    this.#tokens = tokens;
    this.#nStream = nStream;
    if (nStream < 1) throw new RangeError("nStream must be at least 1");
    if (format !== undefined) this.#setFormat(format);
  }

  get format(): KvFormat | undefined {
    return this.#format;
  }

  /** KV bytes written so far. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /**
   * Announces a block: positions [first, first + count) in the given format
   * (the first block fixes the format; later ones must match it). Returns the
   * block stream's size in bytes.
   */
  addBlock(id: number, first: number, count: number, format: KvFormat): number {
    if (this.#format === undefined) this.#setFormat(format);
    else if (!sameFormat(this.#format, format)) throw new StateFileError(`block ${id}: KV format differs from the other blocks'`);
    if (this.#blocks.has(id)) throw new StateFileError(`block ${id} announced twice`);
    const n = this.#tokens.length;
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > n) {
      throw new StateFileError(`block ${id}: positions ${first}..${first + count - 1} are outside 0..${n - 1}`);
    }
    for (const other of this.#blocks.values()) {
      if (first < other.first + other.count && other.first < first + count) {
        throw new StateFileError(`block ${id}: positions overlap another block's`);
      }
    }
    const f = this.#format!;
    const segments: Segment[] = [];
    let s = 0;
    f.layers.forEach((layer, l) => {
      segments.push({ streamOffset: s, fileOffset: this.#kHeader[l]! + 12 + first * layer.kRowBytes, length: count * layer.kRowBytes });
      s += count * layer.kRowBytes;
    });
    f.layers.forEach((layer, l) => {
      const data = this.#vHeader[l]! + 12;
      if (!f.vTrans) {
        segments.push({ streamOffset: s, fileOffset: data + first * layer.vRowBytes, length: count * layer.vRowBytes });
        s += count * layer.vRowBytes;
      } else {
        for (let j = 0; j < layer.vEmbd; j++) {
          segments.push({ streamOffset: s, fileOffset: data + (j * n + first) * layer.vElementBytes, length: count * layer.vElementBytes });
          s += count * layer.vElementBytes;
        }
      }
    });
    this.#blocks.set(id, { first, count, segments, received: 0, total: s });
    return s;
  }

  /** Forgets a block's data so far (it will be sent again, e.g. from another worker). */
  resetBlock(id: number): void {
    const block = this.#blocks.get(id);
    if (block !== undefined) {
      this.#bytesWritten -= block.received;
      this.#blocks.delete(id);
    }
  }

  /** Writes the next bytes of block `id`'s stream; chunks of one block must come in order. */
  async write(id: number, streamOffset: number, data: Uint8Array): Promise<void> {
    const block = this.#blocks.get(id);
    if (block === undefined) throw new StateFileError(`block ${id} was not announced`);
    if (streamOffset !== block.received) {
      throw new StateFileError(`block ${id}: chunk at offset ${streamOffset}, expected ${block.received}`);
    }
    if (streamOffset + data.length > block.total) throw new StateFileError(`block ${id}: more data than its ${block.total} bytes`);
    const fh = await this.#file();
    // Binary search for the segment holding streamOffset, then walk forward.
    let lo = 0;
    let hi = block.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (block.segments[mid]!.streamOffset <= streamOffset) lo = mid;
      else hi = mid - 1;
    }
    let done = 0;
    for (let i = lo; done < data.length; i++) {
      const seg = block.segments[i]!;
      const into = streamOffset + done - seg.streamOffset;
      const n = Math.min(seg.length - into, data.length - done);
      await writeAll(fh, data.subarray(done, done + n), seg.fileOffset + into);
      done += n;
    }
    block.received += data.length;
    this.#bytesWritten += data.length;
  }

  /** Whether every position has a complete block. */
  get complete(): boolean {
    let covered = 0;
    for (const b of this.#blocks.values()) {
      if (b.received !== b.total) return false;
      covered += b.count;
    }
    return covered === this.#tokens.length;
  }

  /** Writes the metadata and closes the file; throws unless every block is complete. */
  async finish(): Promise<void> {
    if (!this.complete) {
      const missing = [...this.#blocks.entries()].filter(([, b]) => b.received !== b.total).map(([id]) => id);
      throw new StateFileError(`assembly incomplete (blocks not finished: ${missing.join(", ") || "none"}; positions covered by no block)`);
    }
    const f = this.#format!;
    const n = this.#tokens.length;
    const fh = await this.#file();
    const head = Buffer.alloc(12 + 4 * n + 8 + 12 * n + 8);
    let at = 0;
    at = head.writeUInt32LE(STATE_MAGIC, at);
    at = head.writeUInt32LE(STATE_VERSION, at);
    at = head.writeUInt32LE(n, at);
    for (const t of this.#tokens) at = head.writeInt32LE(t, at);
    at = head.writeUInt32LE(this.#nStream, at);
    at = head.writeUInt32LE(n, at);
    // The seq_id is ignored on load (the destination sequence is used); 0 keeps the file valid anywhere.
    for (let p = 0; p < n; p++) {
      at = head.writeInt32LE(p, at);
      at = head.writeUInt32LE(1, at);
      at = head.writeInt32LE(0, at);
    }
    at = head.writeUInt32LE(f.vTrans ? 1 : 0, at);
    head.writeUInt32LE(f.layers.length, at);
    await writeAll(fh, head, 0);
    const layerHead = Buffer.alloc(12);
    for (let l = 0; l < f.layers.length; l++) {
      const layer = f.layers[l]!;
      layerHead.writeInt32LE(layer.kType, 0);
      layerHead.writeBigUInt64LE(BigInt(layer.kRowBytes), 4);
      await writeAll(fh, layerHead, this.#kHeader[l]!);
      layerHead.writeInt32LE(layer.vType, 0);
      if (!f.vTrans) layerHead.writeBigUInt64LE(BigInt(layer.vRowBytes), 4);
      else {
        layerHead.writeUInt32LE(layer.vElementBytes, 4);
        layerHead.writeUInt32LE(layer.vEmbd, 8);
      }
      await writeAll(fh, layerHead, this.#vHeader[l]!);
    }
    // The other streams are empty: one u32 zero each, after the data.
    await writeAll(fh, Buffer.alloc(4 * (this.#nStream - 1)), this.#end);
    await this.close();
  }

  /** Closes the file (idempotent); the caller removes it. */
  async close(): Promise<void> {
    const fh = this.#fh ?? (this.#opening === undefined ? undefined : await this.#opening.catch(() => undefined));
    this.#fh = undefined;
    this.#opening = undefined;
    await fh?.close();
  }

  #end = 0;

  #setFormat(format: KvFormat): void {
    this.#format = format;
    const n = this.#tokens.length;
    let at = 12 + 4 * n + 8 + 12 * n + 8;
    for (const layer of format.layers) {
      this.#kHeader.push(at);
      at += 12 + n * layer.kRowBytes;
    }
    for (const layer of format.layers) {
      this.#vHeader.push(at);
      at += 12 + n * layer.vRowBytes;
    }
    this.#end = at;
  }

  #file(): Promise<FileHandle> {
    if (this.#fh !== undefined) return Promise.resolve(this.#fh);
    this.#opening ??= open(this.path, "w").then((fh) => (this.#fh = fh));
    return this.#opening;
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Copies the cells at positions [first, first + count) of a state file into an assembler as block `id`; returns the bytes copied. */
export async function copyBlock(
  state: SequenceStateFile,
  first: number,
  count: number,
  assembler: KvAssembler,
  id: number,
  chunkBytes = 1 << 20,
): Promise<number> {
  if (state.format === undefined) throw new StateFileError(`${state.path}: holds no cells`);
  assembler.addBlock(id, first, count, state.format);
  let offset = 0;
  for await (const chunk of readBlockStream(state, first, count, chunkBytes)) {
    await assembler.write(id, offset, chunk);
    offset += chunk.length;
  }
  return offset;
}
