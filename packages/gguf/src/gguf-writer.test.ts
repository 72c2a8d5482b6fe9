import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { float16BitsToFloat32, float32ToFloat16Bits, GgmlType, GgufValueType, GgufWriter } from "./gguf-writer.ts";
import { readGgufHeader } from "./gguf-reader.ts";

/** node-llama-cpp nests dotted keys; walk them. */
function at(obj: unknown, dotted: string): unknown {
  let cur = obj;
  for (const part of dotted.split(".")) cur = (cur as Record<string, unknown> | undefined)?.[part];
  return cur;
}

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "gguf-writer-test-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("metadata of every type round-trips through node-llama-cpp's readGgufFileInfo and our reader", async () => {
  await withTmp(async (dir) => {
    const w = new GgufWriter();
    const f32 = Math.fround(3.14159);
    w.set("t.u8", { type: GgufValueType.Uint8, value: 250 })
      .set("t.i8", { type: GgufValueType.Int8, value: -100 })
      .set("t.u16", { type: GgufValueType.Uint16, value: 65000 })
      .set("t.i16", { type: GgufValueType.Int16, value: -32000 })
      .setUint32("t.u32", 4_000_000_000)
      .setInt32("t.i32", -2_000_000_000)
      .setFloat32("t.f32", f32)
      .setBool("t.bool", true)
      .setString("t.str", "héllo ß ç ñ 😀")
      .set("t.u64", { type: GgufValueType.Uint64, value: 2n ** 40n + 7n })
      .set("t.i64", { type: GgufValueType.Int64, value: -(2n ** 40n) })
      .set("t.f64", { type: GgufValueType.Float64, value: 1e-300 })
      .setStringArray("t.arr_str", ["a", "", "ünïcödé", "<|im_end|>"])
      .setInt32Array("t.arr_i32", [1, -2, 3])
      .setFloat32Array("t.arr_f32", [0.5, -1.25])
      .set("t.arr_u8", { type: GgufValueType.Array, itemType: GgufValueType.Uint8, value: [0, 255] })
      .set("t.arr_bool", { type: GgufValueType.Array, itemType: GgufValueType.Bool, value: [true, false] })
      .set("t.arr_u64", { type: GgufValueType.Array, itemType: GgufValueType.Uint64, value: [1n, 2n ** 33n] });
    w.addTensor({ name: "a", dims: [3], type: GgmlType.F32, data: new Float32Array([1, 2, 3]) });
    const path = join(dir, "kv.gguf");
    await w.writeToFile(path);

    const expected: Record<string, unknown> = {
      "general.alignment": 32,
      "t.u8": 250,
      "t.i8": -100,
      "t.u16": 65000,
      "t.i16": -32000,
      "t.u32": 4_000_000_000,
      "t.i32": -2_000_000_000,
      "t.f32": f32,
      "t.bool": true,
      "t.str": "héllo ß ç ñ 😀",
      "t.f64": 1e-300,
      "t.arr_str": ["a", "", "ünïcödé", "<|im_end|>"],
      "t.arr_i32": [1, -2, 3],
      "t.arr_f32": [0.5, -1.25],
      "t.arr_u8": [0, 255],
      "t.arr_bool": [true, false],
    };
    const info = await readGgufFileInfo(path, { logWarnings: false });
    assert.equal(info.version, 3);
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(at(info.metadata, k), v, k);
    assert.equal(BigInt(at(info.metadata, "t.u64") as bigint), 2n ** 40n + 7n);
    assert.equal(BigInt(at(info.metadata, "t.i64") as bigint), -(2n ** 40n));

    const ours = await readGgufHeader(path, { readTensorInfo: true });
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(ours.metadata.get(k), v, k);
    assert.equal(ours.metadata.get("t.u64"), 2n ** 40n + 7n);
    assert.deepEqual(ours.metadata.get("t.arr_u64"), [1n, 2n ** 33n]);
    assert.equal(ours.metadataTypes.get("t.arr_str"), GgufValueType.Array);
    assert.deepEqual([...ours.metadata.keys()], ["general.alignment", ...Object.keys(expected).slice(1, 10), "t.u64", "t.i64", "t.f64", ...Object.keys(expected).slice(11), "t.arr_u64"]);
  });
});

test("F32 and F16 tensors are aligned to general.alignment and hold the data", async () => {
  await withTmp(async (dir) => {
    for (const alignment of [32, 64]) {
      const w = new GgufWriter({ alignment });
      const a = new Float32Array([1, -2, 3.5, 0.25, 1e-3]);
      const b = new Float32Array(7 * 3).map((_, i) => i / 8 - 1);
      w.setString("general.architecture", "test");
      w.addTensor({ name: "a", dims: [5], type: GgmlType.F32, data: a });
      w.addTensor({ name: "b", dims: [7, 3], type: GgmlType.F16, data: () => b });
      w.addTensor({ name: "c", dims: [2], type: GgmlType.F16, data: new Uint16Array([0x3c00, 0xc000]) });
      const path = join(dir, `t${alignment}.gguf`);
      const size = await w.writeToFile(path);
      const bytes = await readFile(path);
      assert.equal(bytes.length, size);

      const info = await readGgufFileInfo(path, { logWarnings: false });
      assert.equal(at(info.metadata, "general.alignment"), alignment);
      const tensors = info.fullTensorInfo ?? info.tensorInfo ?? [];
      assert.deepEqual(tensors.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType]), [
        ["a", [5], 0],
        ["b", [7, 3], 1],
        ["c", [2], 1],
      ]);
      const header = await readGgufHeader(path, { readTensorInfo: true });
      const headerBytes = w.buildHeader().length;
      assert.equal(headerBytes % alignment, 0);
      const dataStart = headerBytes;
      for (const t of header.tensors ?? []) assert.equal(Number(t.offset) % alignment, 0, t.name);
      const [ta, tb, tc] = header.tensors ?? [];
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < a.length; i++) assert.equal(view.getFloat32(dataStart + Number(ta!.offset) + 4 * i, true), a[i]);
      for (let i = 0; i < b.length; i++) {
        assert.equal(float16BitsToFloat32(view.getUint16(dataStart + Number(tb!.offset) + 2 * i, true)), b[i], `b[${i}]`);
      }
      assert.equal(float16BitsToFloat32(view.getUint16(dataStart + Number(tc!.offset) + 2, true)), -2);
    }
  });
});

test("float16 conversion rounds to nearest even and handles specials", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to inf
    [1e9, 0x7c00],
    [Number.POSITIVE_INFINITY, 0x7c00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -26, 0x0000], // underflow
    [1 + 2 ** -11, 0x3c00], // tie → even
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
  ];
  for (const [x, bits] of cases) assert.equal(float32ToFloat16Bits(x), bits, String(x));
  assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(Number.NaN))));
  for (const x of [0.1, -0.02, 0.333, 123.456, 6e-5]) {
    const back = float16BitsToFloat32(float32ToFloat16Bits(x));
    assert.ok(Math.abs(back - x) <= Math.abs(x) * 2 ** -10, `${x} → ${back}`);
  }
});

test("writer rejects bad tensors and alignments", async () => {
  assert.throws(() => new GgufWriter({ alignment: 12 }), /multiple of 8/);
  const w = new GgufWriter();
  assert.throws(() => w.addTensor({ name: "x", dims: [4], type: GgmlType.F32, data: new Float32Array(3) }), /need 4/);
  w.addTensor({ name: "x", dims: [4], type: GgmlType.F32, data: () => new Float32Array(3) });
  assert.throws(() => w.addTensor({ name: "x", dims: [1], type: GgmlType.F32, data: new Float32Array(1) }), /duplicate/);
  await withTmp(async (dir) => {
    const path = join(dir, "bad.gguf");
    await assert.rejects(w.writeToFile(path), /need 4/);
    await assert.rejects(stat(path), { code: "ENOENT" }); // no partial file left behind
  });
});
