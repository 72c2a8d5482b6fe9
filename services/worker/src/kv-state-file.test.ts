/**
 * The state-file layout code on synthetic files (no model): both V layouts,
 * cells out of position order, blocks assembled out of order and
 * concurrently, and the wire checks of a block stream.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import {
  KvAssembler,
  STATE_MAGIC,
  StateFileError,
  blockStreamRanges,
  copyBlock,
  readBlockStream,
  readSequenceState,
  type KvFormat,
} from "./kv-state-file.ts";
import { BlockReceiver, KvStreamError, blockStreamEvents, type KvStreamMessage } from "./kv-wire.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "smollm-kv-state-test-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ROW_FORMAT: KvFormat = {
  vTrans: false,
  layers: [
    { kType: 1, kRowBytes: 8, vType: 1, vRowBytes: 8, vElementBytes: 0, vEmbd: 0 },
    { kType: 1, kRowBytes: 12, vType: 1, vRowBytes: 4, vElementBytes: 0, vEmbd: 0 },
  ],
};
const TRANS_FORMAT: KvFormat = {
  vTrans: true,
  layers: [
    { kType: 1, kRowBytes: 8, vType: 1, vRowBytes: 8, vElementBytes: 2, vEmbd: 4 },
    { kType: 1, kRowBytes: 4, vType: 1, vRowBytes: 6, vElementBytes: 2, vEmbd: 3 },
  ],
};

/** Per position, per layer: its K row and V row (V as a row even when stored transposed). */
type Cells = Map<number, { k: Buffer[]; v: Buffer[] }>;

/** Writes a state file the way llama.cpp does: cells in `positions` (file) order, one non-empty stream of `nStream`. */
async function writeState(path: string, format: KvFormat, positions: number[], nStream: number, stream: number): Promise<Cells> {
  const cells: Cells = new Map();
  for (const p of positions) {
    cells.set(p, { k: format.layers.map((l) => randomBytes(l.kRowBytes)), v: format.layers.map((l) => randomBytes(l.vRowBytes)) });
  }
  const parts: Buffer[] = [];
  const u32 = (x: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(x);
    return b;
  };
  const i32 = (x: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(x);
    return b;
  };
  const u64 = (x: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(x));
    return b;
  };
  parts.push(u32(STATE_MAGIC), u32(3), u32(positions.length));
  for (const p of positions) parts.push(i32(1000 + p));
  parts.push(u32(nStream));
  for (let s = 0; s < nStream; s++) {
    if (s !== stream) {
      parts.push(u32(0));
      continue;
    }
    parts.push(u32(positions.length));
    for (const p of positions) parts.push(i32(p), u32(1), i32(s));
    parts.push(u32(format.vTrans ? 1 : 0), u32(format.layers.length));
    format.layers.forEach((l, li) => {
      parts.push(i32(l.kType), u64(l.kRowBytes));
      for (const p of positions) parts.push(cells.get(p)!.k[li]!);
    });
    format.layers.forEach((l, li) => {
      if (!format.vTrans) {
        parts.push(i32(l.vType), u64(l.vRowBytes));
        for (const p of positions) parts.push(cells.get(p)!.v[li]!);
      } else {
        parts.push(i32(l.vType), u32(l.vElementBytes), u32(l.vEmbd));
        for (let j = 0; j < l.vEmbd; j++) {
          for (const p of positions) parts.push(cells.get(p)!.v[li]!.subarray(j * l.vElementBytes, (j + 1) * l.vElementBytes));
        }
      }
    });
  }
  await writeFile(path, Buffer.concat(parts));
  return cells;
}

/** The block stream of positions [first, first + count) built from the cells themselves. */
function expectedStream(format: KvFormat, cells: Cells, first: number, count: number): Buffer {
  const out: Buffer[] = [];
  const ps = Array.from({ length: count }, (_, i) => first + i);
  format.layers.forEach((_, li) => ps.forEach((p) => out.push(cells.get(p)!.k[li]!)));
  format.layers.forEach((l, li) => {
    if (!format.vTrans) ps.forEach((p) => out.push(cells.get(p)!.v[li]!));
    else for (let j = 0; j < l.vEmbd; j++) ps.forEach((p) => out.push(cells.get(p)!.v[li]!.subarray(j * l.vElementBytes, (j + 1) * l.vElementBytes)));
  });
  return Buffer.concat(out);
}

async function streamOf(path: string, first: number, count: number, chunk = 7): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of readBlockStream(await readSequenceState(path), first, count, chunk)) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

for (const [name, format] of [["row V (flash attention)", ROW_FORMAT], ["transposed V", TRANS_FORMAT]] as const) {
  test(`${name}: cells out of order are read by position, and blocks assemble into one file with the target's streams`, async () => {
    // A ring buffer that wrapped: positions 5..39 in cells 0..34, then 0..4.
    const n = 40;
    const order = [...Array.from({ length: n - 5 }, (_, i) => i + 5), 0, 1, 2, 3, 4];
    const source = join(dir, `source-${format.vTrans}.state`);
    const cells = await writeState(source, format, order, 3, 1);
    const state = await readSequenceState(source);
    assert.equal(state.nStream, 3);
    assert.equal(state.cellCount, n);
    assert.deepEqual([...state.positions], order);
    assert.deepEqual(state.format, format);
    // Small chunks cross every segment boundary.
    assert.ok((await streamOf(source, 3, 10)).equals(expectedStream(format, cells, 3, 10)));

    // Assemble positions [0, 39) from three blocks, last block first, concurrently.
    const out = join(dir, `assembled-${format.vTrans}.state`);
    const tokens = Array.from({ length: n - 1 }, (_, p) => 1000 + p);
    const assembler = new KvAssembler(out, tokens, 5);
    await Promise.all([copyBlock(state, 25, 14, assembler, 2, 5), copyBlock(state, 0, 11, assembler, 0, 9), copyBlock(state, 11, 14, assembler, 1, 64)]);
    await assembler.finish();
    const assembled = await readSequenceState(out);
    assert.equal(assembled.nStream, 5);
    assert.deepEqual(assembled.tokens, tokens);
    assert.deepEqual([...assembled.positions], Array.from({ length: n - 1 }, (_, p) => p));
    assert.deepEqual(assembled.format, format);
    assert.ok((await streamOf(out, 0, n - 1, 1 << 16)).equals(expectedStream(format, cells, 0, n - 1)));
  });
}

test("malformed files and incomplete assemblies are refused", async () => {
  const path = join(dir, "bad.state");
  await writeState(path, ROW_FORMAT, [0, 1, 2, 3], 2, 0);
  const state = await readSequenceState(path);
  // Positions 4 and 5 are not in the file.
  assert.throws(() => blockStreamRanges(state, 2, 4), StateFileError);
  await truncate(path, (await readFile(path)).length - 3);
  await assert.rejects(readSequenceState(path), StateFileError);
  await writeFile(path, Buffer.from("not a state file at all"));
  await assert.rejects(readSequenceState(path), StateFileError);

  const assembler = new KvAssembler(join(dir, "partial.state"), [1, 2, 3, 4], 1);
  assembler.addBlock(0, 0, 2, ROW_FORMAT);
  assert.throws(() => assembler.addBlock(1, 1, 2, ROW_FORMAT), StateFileError, "overlap");
  assert.throws(() => assembler.addBlock(2, 2, 2, TRANS_FORMAT), StateFileError, "format");
  await assert.rejects(assembler.write(0, 5, Buffer.alloc(1)), StateFileError, "out of order");
  await assert.rejects(assembler.finish(), StateFileError);
  await assembler.close();
});

test("a block stream on the wire: header, CRC-checked chunks, SHA-256 trailer; corruption is caught", async () => {
  const path = join(dir, "wire.state");
  await writeState(path, ROW_FORMAT, Array.from({ length: 20 }, (_, i) => i), 1, 0);
  const state = await readSequenceState(path);
  const messages: KvStreamMessage[] = [];
  for await (const m of blockStreamEvents(state, 4, 10, { chunkBytes: 16, computeMs: 1, reusedTokens: 0 })) {
    messages.push(m as unknown as KvStreamMessage);
  }
  assert.equal(messages[0]?.event.case, "header");
  assert.equal(messages[messages.length - 1]?.event.case, "trailer");
  const receive = async (msgs: KvStreamMessage[]): Promise<Buffer> => {
    const out = join(dir, `wire-out-${Math.random()}.state`);
    const assembler = new KvAssembler(out, Array.from({ length: 14 }, () => 5), 1);
    const receiver = new BlockReceiver(assembler, 0, 4, 10);
    for (const m of msgs) await receiver.accept(m);
    assert.ok(receiver.done);
    assembler.addBlock(1, 0, 4, ROW_FORMAT);
    await assembler.write(1, 0, Buffer.alloc(4 * 32));
    await assembler.finish();
    return streamOf(out, 4, 10, 1 << 16);
  };
  assert.ok((await receive(messages)).equals(await streamOf(path, 4, 10)));

  // A flipped bit fails its chunk's CRC; a chunk replaced with its CRC fixed fails the SHA-256; a missing chunk fails the order check.
  const flip = structuredClone(messages) as KvStreamMessage[];
  const c = flip[2]!.event as { case: "chunk"; value: { data: Uint8Array } };
  c.value.data[0]! ^= 1;
  await assert.rejects(receive(flip), KvStreamError);
  const forged = structuredClone(messages) as KvStreamMessage[];
  const f = forged[2]!.event as { case: "chunk"; value: { data: Uint8Array; crc32: number } };
  f.value.data[0]! ^= 1;
  f.value.crc32 = crc32(f.value.data);
  await assert.rejects(receive(forged), /SHA-256/);
  await assert.rejects(receive([...messages.slice(0, 2), ...messages.slice(3)]), /expected/);
  // The last chunk lost: the trailer comes too early.
  await assert.rejects(receive([...messages.slice(0, -2), messages[messages.length - 1]!]), /trailer after/);
});
