/**
 * Constrained decoding (GBNF, JSON schema, framed JSON for function calls) and
 * log-probabilities, against real node-llama-cpp on the tiny random model:
 * whatever the weights, the grammar decides the shape.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ClusterError, createLogger, createRegistry } from "@smollm/common";
import { loadConfig } from "./config.ts";
import { Engine, type GenerateParams, type SampledTokenLogprob } from "./engine.ts";
import { frameJsonGrammar, gbnfLiteral } from "./grammar.ts";
import { createWorkerMetrics } from "./metrics.ts";
import { loadWorkerModel, type LoadedModel } from "./model-loader.ts";

const logger = createLogger({ service: "worker-test", level: "warn" });
let loaded: LoadedModel;
let engine: Engine;

before(async () => {
  const config = loadConfig({ argv: ["--model", "tiny", "--slots", "2", "--context-size", "1024"], env: {} });
  loaded = await loadWorkerModel(config, logger);
  engine = new Engine({ loaded, metrics: createWorkerMetrics(createRegistry("worker"), config.slots), logger, maxQueue: 4, queueTimeoutMs: 10_000 });
});

after(async () => {
  await engine?.close();
  await loaded?.close();
});

async function run(params: Partial<GenerateParams>): Promise<{ text: string; completionTokens: number; reason: string; logprobs: SampledTokenLogprob[] }> {
  let text = "";
  let completionTokens = 0;
  let reason = "";
  const logprobs: SampledTokenLogprob[] = [];
  for await (const e of engine.generate({ promptTokens: [100, 200, 300, 400], maxTokens: 200, ...params })) {
    if (e.type === "delta") {
      text += e.text;
      logprobs.push(...(e.logprobs ?? []));
    } else if (e.type === "finished") {
      completionTokens = e.completionTokens;
      reason = e.reason;
    }
  }
  return { text, completionTokens, reason, logprobs };
}

const WEATHER = {
  type: "object",
  properties: {
    city: { type: "string", maxLength: 12 },
    unit: { enum: ["celsius", "fahrenheit"] },
    days: { type: "integer" },
    ratio: { type: "number" },
    alerts: { type: "boolean" },
  },
} as const;

test("a JSON schema makes even random weights produce a valid value, for many seeds", async () => {
  for (let seed = 0; seed < 6; seed++) {
    const { text, reason } = await run({ jsonSchema: JSON.stringify(WEATHER), sampling: { temperature: 1, seed } });
    assert.equal(reason, "stop", text);
    const value = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), ["city", "unit", "days", "ratio", "alerts"]);
    // (Not checked: maxLength. Random weights emit stray bytes >= 0x80 that the grammar
    // counts as one character each but UTF-8 decoding turns into U+FFFD runs.)
    assert.equal(typeof value["city"], "string");
    assert.ok(["celsius", "fahrenheit"].includes(value["unit"] as string));
    // Integers without exponents; decimals with small ones: never Infinity.
    assert.ok(Number.isSafeInteger(value["days"]) || Number.isInteger(value["days"]), String(value["days"]));
    assert.ok(Number.isFinite(value["ratio"]), String(value["ratio"]));
    assert.equal(typeof value["alerts"], "boolean");
  }
});

test("framed JSON: a function call between <tool_call> tags, one or several", async () => {
  const call = {
    type: "object",
    properties: { name: { const: "get_weather" }, arguments: WEATHER },
  };
  const one = await run({
    jsonSchema: JSON.stringify(call),
    jsonPrefix: "<tool_call>\n",
    jsonSuffix: "\n</tool_call>",
    sampling: { temperature: 0.8, seed: 3 },
  });
  const m = /^<tool_call>\n([^]*)\n<\/tool_call>$/.exec(one.text);
  assert.ok(m, one.text);
  assert.equal((JSON.parse(m[1] ?? "") as { name: string }).name, "get_weather");

  const many = await run({
    jsonSchema: JSON.stringify(call),
    jsonPrefix: "<tool_call>\n",
    jsonSuffix: "\n</tool_call>",
    jsonMaxValues: 3,
    maxTokens: 400,
    sampling: { temperature: 0.8, seed: 5 },
  });
  const blocks = many.text.split("\n</tool_call>").slice(0, -1);
  assert.ok(blocks.length >= 1 && blocks.length <= 3, many.text);
  for (const block of blocks) assert.equal((JSON.parse(block.replace(/^\n?<tool_call>\n/, "")) as { name: string }).name, "get_weather");
});

test("a GBNF grammar; malformed constraints are invalid_argument", async () => {
  const { text } = await run({ grammar: 'root ::= [0-9]{3} "-" ("ab" | "çé")', sampling: { temperature: 1, seed: 1 } });
  assert.match(text, /^[0-9]{3}-(ab|çé)$/);
  for (const bad of [{ grammar: "root ::= (" }, { jsonSchema: "[1]" }, { jsonSuffix: "x" }, { grammar: "root ::= \"a\"", jsonSchema: "{}" }]) {
    await assert.rejects(run(bad), (e: unknown) => e instanceof ClusterError && e.code === "invalid_argument", JSON.stringify(bad));
  }
});

test("logprobs: one entry per sampled token, bytes rebuild the text, greedy picks the top alternative", async () => {
  const { text, completionTokens, reason, logprobs } = await run({
    maxTokens: 24,
    logprobs: true,
    topLogprobs: 5,
    sampling: { temperature: 0 },
  });
  assert.equal(logprobs.length, reason === "length" ? completionTokens : completionTokens - 1);
  assert.equal(new TextDecoder().decode(Buffer.concat(logprobs.map((l) => l.bytes))), text);
  for (const l of logprobs) {
    assert.equal(l.top.length, 5);
    assert.equal(l.top[0]?.token, l.token);
    assert.ok(Math.abs((l.top[0]?.logprob ?? 0) - l.logprob) < 1e-6);
    for (let i = 1; i < l.top.length; i++) assert.ok((l.top[i]?.logprob ?? 0) <= (l.top[i - 1]?.logprob ?? 0));
  }
  // Without alternatives: the sampled token's log-probability only.
  const plain = await run({ maxTokens: 8, logprobs: true, sampling: { temperature: 0.7, seed: 2 } });
  assert.ok(plain.logprobs.length > 0 && plain.logprobs.every((l) => l.top.length === 0 && l.logprob <= 0));
});

test("frameJsonGrammar and gbnfLiteral", () => {
  const value = 'root ::= "{" integer-number-rule "}" "\\n\\n\\n\\n" [\\n]*\ninteger-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
  assert.equal(
    frameJsonGrammar(value, "", "", 0),
    'root ::= smollm-value\nsmollm-value ::= "{" integer-number-rule "}"\ninteger-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})',
  );
  assert.equal(
    frameJsonGrammar(value, "<a>\n", "\n</a>", 4).split("\n")[0],
    'root ::= smollm-item ("\\n" smollm-item){0,3}',
  );
  assert.throws(() => frameJsonGrammar("root ::= x", "", "", 0));
  assert.equal(gbnfLiteral('a"b\\c\nd\u0001é'), '"a\\"b\\\\c\\nd\\x01é"');
});
