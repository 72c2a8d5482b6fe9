import { test } from "node:test";
import assert from "node:assert/strict";
import { TokenTextStream } from "./utf8-stream.ts";

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

test("a character split across tokens is emitted only when complete", () => {
  // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80
  const table = [bytes(0x61), bytes(0xc3), bytes(0xa9), bytes(0xe2, 0x82), bytes(0xac, 0x62), bytes(0xf0), bytes(0x9f, 0x98), bytes(0x80)];
  const s = new TokenTextStream(table);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((t) => s.push(t)), ["a", "", "é", "", "€b", "", "", "😀"]);
  assert.equal(s.end(), "");
});

test("invalid bytes become U+FFFD, never an exception or broken text", () => {
  const s = new TokenTextStream([]);
  assert.equal(s.pushBytes(bytes(0x80)), "\uFFFD"); // lone continuation byte
  assert.equal(s.pushBytes(bytes(0xc3)), ""); // lead byte, maybe completed later…
  assert.equal(s.pushBytes(bytes(0x41)), "\uFFFDA"); // …but it is not
  assert.equal(s.pushBytes(bytes(0xff, 0x42)), "\uFFFDB");
  assert.equal(s.pushBytes(bytes(0xe2, 0x82)), "");
  assert.equal(s.end(), "\uFFFD"); // an unfinished character at the end
});

test("special tokens render as their text", () => {
  const s = new TokenTextStream([new TextEncoder().encode("<|im_end|>"), bytes(0xc3)]);
  assert.equal(s.push(1), "");
  assert.equal(s.push(0), "\uFFFD<|im_end|>");
});
