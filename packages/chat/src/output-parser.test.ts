import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SmolLM3OutputParser, type OutputEvent, type ParsedToolCall } from "./index.ts";

interface Summary {
  content: string;
  reasoning: string;
  calls: { name: string; args: string; end: ParsedToolCall | undefined }[];
}

/** Feeds `pieces` one by one and folds the events. */
function run(pieces: readonly string[], toolCalls = true): { summary: Summary; events: OutputEvent[] } {
  const parser = new SmolLM3OutputParser({ toolCalls });
  const events: OutputEvent[] = [];
  for (const piece of pieces) events.push(...parser.push(piece));
  events.push(...parser.end());
  const summary: Summary = { content: "", reasoning: "", calls: [] };
  for (const e of events) {
    switch (e.type) {
      case "content":
        summary.content += e.text;
        break;
      case "reasoning":
        summary.reasoning += e.text;
        break;
      case "tool_call_begin":
        assert.equal(e.index, summary.calls.length);
        summary.calls.push({ name: e.name, args: "", end: undefined });
        break;
      case "tool_call_arguments":
        summary.calls[e.index]!.args += e.text;
        break;
      case "tool_call_end":
        if (summary.calls[e.index] === undefined) summary.calls[e.index] = { name: "", args: "", end: undefined };
        summary.calls[e.index]!.end = e.call;
        break;
    }
  }
  return { summary, events };
}

/** Every way of cutting `text` into pieces of 1..n characters (a sample). */
function splits(text: string): string[][] {
  const out: string[][] = [[text], [...text]];
  for (const size of [2, 3, 5, 7, 11]) {
    const pieces: string[] = [];
    for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
    out.push(pieces);
  }
  return out;
}

const THINK = "<think>\nThe user greets me. I answer politely.\n</think>\n\nHello! How can I help?";

test("reasoning is split from the answer, whatever the token boundaries", () => {
  for (const pieces of splits(THINK)) {
    const { summary } = run(pieces);
    assert.equal(summary.reasoning, "The user greets me. I answer politely.");
    assert.equal(summary.content, "Hello! How can I help?");
  }
});

test("no reasoning block: everything is content, leading newlines dropped", () => {
  assert.deepEqual(run(["\n\nBonjour", " à ", "vous."]).summary, { content: "Bonjour à vous.", reasoning: "", calls: [] });
  // Text that only looks like the start of a tag is released at the end.
  assert.equal(run(["a <thin", "king"]).summary.content, "a <thinking");
  assert.equal(run(["x <th"]).summary.content, "x <th");
});

test("an empty think block (no-think prefill echoed) gives no reasoning", () => {
  const { summary } = run(["<think>\n\n</think>\n", "Answer"]);
  assert.equal(summary.reasoning, "");
  assert.equal(summary.content, "Answer");
});

test("reasoning cut by max_tokens is still reasoning", () => {
  const { summary } = run(["<think>\nStep one", "\n"]);
  assert.equal(summary.reasoning, "Step one");
  assert.equal(summary.content, "");
});

const CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "São Paulo", "days": [1, 2], "unit": {"c": true}}}\n</tool_call>';

test("a tool call streams its name then its arguments, tags never in content", () => {
  const text = `<think>\nI need the weather.\n</think>\n\nLet me check.\n${CALL}\n${CALL.replace("get_weather", "get_time")}`;
  for (const pieces of splits(text)) {
    const { summary, events } = run(pieces);
    assert.equal(summary.reasoning, "I need the weather.");
    assert.equal(summary.content, "Let me check.");
    assert.equal(summary.calls.length, 2);
    for (const [i, name] of ["get_weather", "get_time"].entries()) {
      const call = summary.calls[i]!;
      assert.equal(call.name, name);
      assert.equal(call.args, '{"city": "São Paulo", "days": [1, 2], "unit": {"c": true}}');
      assert.deepEqual(call.end, {
        ok: true,
        name,
        arguments: call.args,
        value: { city: "São Paulo", days: [1, 2], unit: { c: true } },
      });
    }
    if (pieces.length > 20) {
      // Streamed incrementally: the arguments came in several events.
      assert.ok(events.filter((e) => e.type === "tool_call_arguments" && e.index === 0).length > 3);
    }
    for (const e of events) if (e.type === "content") assert.ok(!e.text.includes("<"), e.text);
  }
});

test("other key orders and quoted arguments are read when the call closes", () => {
  const reversed = run(['<tool_call>{"arguments": {"a": 1}, "name": "f"}</tool_call>']).summary.calls[0]!;
  assert.equal(reversed.name, "f");
  assert.equal(reversed.args, '{"a":1}');
  const quoted = run(['<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>']).summary.calls[0]!;
  assert.equal(quoted.args, '{"a": 1}');
  assert.deepEqual(quoted.end?.ok && quoted.end.value, { a: 1 });
  const noArgs = run(['<tool_call>{"name": "now"}</tool_call>']).summary.calls[0]!;
  assert.equal(noArgs.args, "{}");
});

test("malformed and truncated calls are reported, not shown", () => {
  const bad = run(["<tool_call>\n{not json}\n</tool_call>"]);
  assert.equal(bad.summary.content, "");
  const end = bad.summary.calls[0]?.end;
  assert.ok(end && !end.ok && !end.truncated && /not valid JSON/.test(end.error));

  const cut = run(['<tool_call>\n{"name": "f", "arguments": {"city": "Pa']);
  const cutEnd = cut.summary.calls[0]?.end;
  assert.ok(cutEnd && !cutEnd.ok && cutEnd.truncated);
  assert.equal(cut.summary.calls[0]?.name, "f");
  assert.equal(cut.summary.calls[0]?.args, '{"city": "Pa');

  // A complete call whose closing tag never came (end of generation) is accepted.
  const open = run(['<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n']).summary.calls[0]!;
  assert.equal(open.end?.ok, true);
  assert.equal(open.args, '{"x": 1}');
});

test("without tools, call tags are plain content; stray closing tags are dropped", () => {
  assert.equal(run([CALL], false).summary.content, CALL);
  assert.equal(run(["a</think>b"]).summary.content, "ab");
  assert.equal(run(["a</tool_call> b"]).summary.content, "ab");
});

test("whitespace around calls is dropped, inside answers kept", () => {
  assert.equal(run(["One  two \n", " three\n"]).summary.content, "One  two \n three\n");
  assert.equal(run(["Answer.\n\n", CALL, "\n\n"]).summary.content, "Answer.");
});

test("property: any split of any mix gives the same result as one piece", () => {
  const part = fc.oneof(
    fc.constantFrom("<think>", "</think>", "<tool_call>", "</tool_call>", "\n", " ", "<", "<th", "{", "}"),
    fc.string({ maxLength: 6 }),
    fc.constant('{"name": "f", "arguments": {"a": [1, {"b": "}"}]}}'),
  );
  fc.assert(
    fc.property(fc.array(part, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1 }), (parts, sizes) => {
      const text = parts.join("");
      const whole = run([text]).summary;
      const pieces: string[] = [];
      for (let i = 0, k = 0; i < text.length; k++) {
        const n = sizes[k % sizes.length]!;
        pieces.push(text.slice(i, i + n));
        i += n;
      }
      const split = run(pieces).summary;
      assert.deepEqual(split, whole);
      for (const t of ["<think>", "</think>", "<tool_call>", "</tool_call>"]) assert.ok(!split.content.includes(t), t);
      // The model may mention call tags while thinking; think tags never show.
      for (const t of ["<think>", "</think>"]) assert.ok(!split.reasoning.includes(t), t);
    }),
    { numRuns: 3000 },
  );
});
