/**
 * GGUF v3 writer (little endian).
 *
 * Layout written (see ggml/docs/gguf.md):
 *   magic "GGUF" | u32 version=3 | u64 tensor_count | u64 kv_count
 *   kv_count × { string key | u32 value_type | value }
 *   tensor_count × { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` | tensor data, each tensor aligned to `general.alignment`
 *
 * The header (metadata + tensor infos) is built in memory — even the 128k-token vocabulary
 * is only a few MB — and tensor data is streamed to the file one tensor at a time, so tensors
 * given as producer functions are never all resident at once.
 */
import { open, rm, type FileHandle } from "node:fs/promises";

/** GGUF metadata value type ids (gguf.md `gguf_metadata_value_type`). */
export const GgufValueType = {
  Uint8: 0,
  Int8: 1,
  Uint16: 2,
  Int16: 3,
  Uint32: 4,
  Int32: 5,
  Float32: 6,
  Bool: 7,
  String: 8,
  Array: 9,
  Uint64: 10,
  Int64: 11,
  Float64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Scalar value types (everything except Array). */
export type GgufScalarType = Exclude<GgufValueType, typeof GgufValueType.Array>;

/** A scalar metadata value with its explicit wire type. 64-bit integers accept bigint or number. */
export type GgufScalarValue =
  | { type: typeof GgufValueType.String; value: string }
  | { type: typeof GgufValueType.Bool; value: boolean }
  | { type: typeof GgufValueType.Uint64 | typeof GgufValueType.Int64; value: bigint | number }
  | {
      type: Exclude<
        GgufScalarType,
        | typeof GgufValueType.String
        | typeof GgufValueType.Bool
        | typeof GgufValueType.Uint64
        | typeof GgufValueType.Int64
      >;
      value: number;
    };

/** An array metadata value: all elements share one type (nested arrays are not supported). */
export type GgufArrayValue =
  | { type: typeof GgufValueType.Array; itemType: typeof GgufValueType.String; value: readonly string[] }
  | { type: typeof GgufValueType.Array; itemType: typeof GgufValueType.Bool; value: readonly boolean[] }
  | {
      type: typeof GgufValueType.Array;
      itemType: typeof GgufValueType.Uint64 | typeof GgufValueType.Int64;
      value: readonly (bigint | number)[];
    }
  | {
      type: typeof GgufValueType.Array;
      itemType: Exclude<
        GgufScalarType,
        | typeof GgufValueType.String
        | typeof GgufValueType.Bool
        | typeof GgufValueType.Uint64
        | typeof GgufValueType.Int64
      >;
      value: readonly number[] | ArrayLike<number>;
    };

export type GgufValue = GgufScalarValue | GgufArrayValue;

/** ggml tensor types this writer can store. */
export const GgmlType = {
  F32: 0,
  F16: 1,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/**
 * Tensor data: F32 takes a Float32Array (converted to F16 when the tensor type is F16);
 * F16 may also take a Uint16Array of raw half-precision bits. A function is called lazily,
 * right before the tensor is written, so large tensors need not be held in memory together.
 */
export type GgufTensorData = Float32Array | Uint16Array | (() => Float32Array | Uint16Array);

export interface GgufTensor {
  name: string;
  /** Dimensions, innermost (fastest varying) first, as GGUF stores them. */
  dims: readonly number[];
  type: GgmlType;
  data: GgufTensorData;
}

/** Default alignment (bytes) of tensor data; written as `general.alignment`. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

const textEncoder = new TextEncoder();

/** Growable little-endian byte buffer used to build the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: bigint | number): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: bigint | number): void { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string): void { const b = textEncoder.encode(s); this.u64(b.length); this.bytes(b); }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem !== 0) { const n = alignment - rem; this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufScalarType, value: unknown): void {
  switch (type) {
    case GgufValueType.Uint8: sink.u8(value as number); break;
    case GgufValueType.Int8: sink.i8(value as number); break;
    case GgufValueType.Uint16: sink.u16(value as number); break;
    case GgufValueType.Int16: sink.i16(value as number); break;
    case GgufValueType.Uint32: sink.u32(value as number); break;
    case GgufValueType.Int32: sink.i32(value as number); break;
    case GgufValueType.Float32: sink.f32(value as number); break;
    case GgufValueType.Bool: sink.u8(value ? 1 : 0); break;
    case GgufValueType.String: sink.str(value as string); break;
    case GgufValueType.Uint64: sink.u64(value as bigint | number); break;
    case GgufValueType.Int64: sink.i64(value as bigint | number); break;
    case GgufValueType.Float64: sink.f64(value as number); break;
    default: throw new Error(`unsupported GGUF scalar type ${String(type)}`);
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Converts one float32 to IEEE half-precision bits (round to nearest even). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1; // may carry into exponent: correct
  return sign | half;
}

/** Converts half-precision bits back to a number (used by readers/tests). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function bytesPerElement(type: GgmlType): number {
  return type === GgmlType.F32 ? 4 : 2;
}

/** Produces the on-disk little-endian bytes of one tensor. */
function tensorBytes(t: GgufTensor): Uint8Array {
  const data = typeof t.data === "function" ? t.data() : t.data;
  const n = elementCount(t.dims);
  if (data.length !== n) {
    throw new Error(`tensor ${t.name}: data has ${data.length} elements, dims ${JSON.stringify(t.dims)} need ${n}`);
  }
  // Typed arrays are host-endian; every platform node-llama-cpp supports is little endian,
  // so the raw buffer is already the GGUF byte order.
  if (t.type === GgmlType.F32) {
    if (!(data instanceof Float32Array)) throw new Error(`tensor ${t.name}: F32 needs a Float32Array`);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof Uint16Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const half = new Uint16Array(n);
  for (let i = 0; i < n; i++) half[i] = float32ToFloat16Bits(data[i]!);
  return new Uint8Array(half.buffer);
}

/**
 * Collects metadata and tensors, then writes a GGUF v3 file.
 *
 * Keys keep insertion order; setting a key twice replaces its value in place.
 * `general.alignment` is written automatically (as u32) when the alignment differs from 32
 * or when `writeAlignmentKey` is true (default true, so readers never have to assume).
 */
export class GgufWriter {
  private readonly kv = new Map<string, GgufValue>();
  private readonly tensors: GgufTensor[] = [];
  /** Alignment of tensor data in bytes (default 32). */
  readonly alignment: number;

  constructor(options: { alignment?: number; writeAlignmentKey?: boolean } = {}) {
    this.alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(this.alignment) || this.alignment <= 0 || this.alignment % 8 !== 0) {
      throw new Error(`alignment must be a positive multiple of 8, got ${this.alignment}`);
    }
    if (options.writeAlignmentKey ?? true) this.set("general.alignment", { type: GgufValueType.Uint32, value: this.alignment });
  }

  /** Sets a metadata key with an explicitly typed value. */
  set(key: string, value: GgufValue): this {
    this.kv.set(key, value);
    return this;
  }
  setString(key: string, value: string): this { return this.set(key, { type: GgufValueType.String, value }); }
  setUint32(key: string, value: number): this { return this.set(key, { type: GgufValueType.Uint32, value }); }
  setInt32(key: string, value: number): this { return this.set(key, { type: GgufValueType.Int32, value }); }
  setFloat32(key: string, value: number): this { return this.set(key, { type: GgufValueType.Float32, value }); }
  setBool(key: string, value: boolean): this { return this.set(key, { type: GgufValueType.Bool, value }); }
  setStringArray(key: string, value: readonly string[]): this {
    return this.set(key, { type: GgufValueType.Array, itemType: GgufValueType.String, value });
  }
  setInt32Array(key: string, value: readonly number[] | ArrayLike<number>): this {
    return this.set(key, { type: GgufValueType.Array, itemType: GgufValueType.Int32, value });
  }
  setFloat32Array(key: string, value: readonly number[] | ArrayLike<number>): this {
    return this.set(key, { type: GgufValueType.Array, itemType: GgufValueType.Float32, value });
  }

  /** Removes a metadata key (e.g. to build deliberately broken files in tests). */
  delete(key: string): boolean {
    return this.kv.delete(key);
  }

  /** Reads back a metadata value that was set. */
  get(key: string): GgufValue | undefined {
    return this.kv.get(key);
  }

  /** Adds a tensor; names must be unique. */
  addTensor(tensor: GgufTensor): this {
    if (this.tensors.some((t) => t.name === tensor.name)) throw new Error(`duplicate tensor ${tensor.name}`);
    if (tensor.dims.length === 0 || tensor.dims.length > 4) throw new Error(`tensor ${tensor.name}: 1–4 dims required`);
    if (typeof tensor.data !== "function" && tensor.data.length !== elementCount(tensor.dims)) {
      throw new Error(`tensor ${tensor.name}: data has ${tensor.data.length} elements, dims ${JSON.stringify(tensor.dims)} need ${elementCount(tensor.dims)}`);
    }
    this.tensors.push(tensor);
    return this;
  }

  /** Serializes header + tensor infos (everything before tensor data, padded to alignment). */
  buildHeader(): Uint8Array {
    const sink = new ByteSink();
    sink.bytes(textEncoder.encode("GGUF"));
    sink.u32(3);
    sink.u64(this.tensors.length);
    sink.u64(this.kv.size);
    for (const [key, v] of this.kv) {
      sink.str(key);
      sink.u32(v.type);
      if (v.type === GgufValueType.Array) {
        sink.u32(v.itemType);
        const items = v.value as ArrayLike<unknown>;
        sink.u64(items.length);
        for (let i = 0; i < items.length; i++) writeScalar(sink, v.itemType, items[i]);
      } else {
        writeScalar(sink, v.type, v.value);
      }
    }
    let offset = 0;
    for (const t of this.tensors) {
      sink.str(t.name);
      sink.u32(t.dims.length);
      for (const d of t.dims) sink.u64(d);
      sink.u32(t.type);
      sink.u64(offset);
      offset += alignUp(elementCount(t.dims) * bytesPerElement(t.type), this.alignment);
    }
    sink.pad(this.alignment);
    return sink.result();
  }

  /**
   * Writes the file at `path` (overwriting it). Tensor data is written sequentially with
   * positional writes; the returned value is the file size in bytes. On failure the partial
   * file is removed (callers wanting atomic replacement write to a temporary name and rename).
   */
  async writeToFile(path: string): Promise<number> {
    const handle = await open(path, "w");
    let ok = false;
    try {
      const size = await this.writeToHandle(handle);
      ok = true;
      return size;
    } finally {
      await handle.close();
      if (!ok) await rm(path, { force: true });
    }
  }

  private async writeToHandle(handle: FileHandle): Promise<number> {
    const header = this.buildHeader();
    let position = 0;
    const write = async (bytes: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    };
    await write(header);
    const zeros = new Uint8Array(this.alignment);
    for (const t of this.tensors) {
      const bytes = tensorBytes(t);
      await write(bytes);
      const pad = alignUp(bytes.length, this.alignment) - bytes.length;
      if (pad > 0) await write(zeros.subarray(0, pad));
    }
    return position;
  }
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
