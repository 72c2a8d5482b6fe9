import { test } from "node:test";
import assert from "node:assert/strict";
import { StopMatcher } from "./stop-matcher.ts";

function run(stops: string[], pieces: string[]): { out: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let out = "";
  for (const piece of pieces) {
    const r = m.push(piece);
    out += r.text;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + m.flush(), stopped: false };
}

test("stops before the stop string, across pieces, without emitting it", () => {
  assert.deepEqual(run(["END"], ["hello E", "N", "D world"]), { out: "hello ", stopped: true });
  assert.deepEqual(run(["\n\n", "###"], ["a\n", "b##", "#c"]), { out: "a\nb", stopped: true });
  assert.deepEqual(run(["ab", "b"], ["xab"]), { out: "x", stopped: true });
});

test("holds back only a possible prefix, releasing it when it cannot match", () => {
  const m = new StopMatcher(["</s>"]);
  assert.deepEqual(m.push("text <"), { text: "text ", stopped: false });
  assert.deepEqual(m.push("/"), { text: "", stopped: false });
  assert.deepEqual(m.push("x"), { text: "</x", stopped: false });
  assert.deepEqual(run(["</s>"], ["a</"]), { out: "a</", stopped: false });
});

test("no stops: text passes through", () => {
  assert.deepEqual(run([], ["a", "b"]), { out: "ab", stopped: false });
  assert.deepEqual(run([""], ["a"]), { out: "a", stopped: false });
});
