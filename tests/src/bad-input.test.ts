/**
 * Bad input against a real cluster: every malformed, oversized, mistyped or
 * absurd request over HTTP, and malformed protobuf over the public gRPC API,
 * gets a 4xx / INVALID_ARGUMENT (RESOURCE_EXHAUSTED for an oversized gRPC
 * message, as gRPC defines) with a clear message. Meanwhile another client's
 * stream runs to its end, no process crashes, no 5xx is counted, and the
 * worker's slots come back to zero. A fast-check fuzzer then throws random
 * hostile bodies at the live gateway under the same rules (the parser alone
 * is fuzzed in services/gateway/src/chat-request.fuzz.test.ts).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { request as httpRequest } from "node:http";
import fc from "fast-check";
import { Client, Metadata, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { publicApi } from "@smollm/proto";
import { chatCompletion, startLocalCluster, type ChatResult, type LocalCluster } from "@smollm/testkit";
import { alive, busySlots, chatBody, gatewayMetric, startTraffic, timeUntil, type Traffic } from "./fault-helpers.ts";
import { addFailure, recordCase, tally } from "./reliability-record.ts";

const SUITE = "bad input";
let cluster: LocalCluster;
let url: string;
let bystander: Promise<ChatResult>;
let traffic: Traffic;

before(async () => {
  cluster = await startLocalCluster({
    workers: 1,
    privateRedis: true,
    workerArgs: () => ["--slots", "8", "--context-size", "1024"],
  });
  url = cluster.gatewayUrl;
  // Other clients: a long stream, and short requests running through the whole file.
  bystander = chatCompletion(url, chatBody("a bystander's long answer", { maxTokens: 900 }), { requestId: "bystander", timeoutMs: 170_000 });
  traffic = startTraffic(url, { prefix: "bad-input-neighbour", concurrency: 2, max: 5_000, maxMs: 170_000 });
});
after(async () => {
  await cluster?.stop();
});

/** What one raw HTTP exchange returned. */
interface RawAnswer {
  status: number;
  body: string;
}

/** POSTs raw bytes to /v1/chat/completions (content-length, or chunked when `chunked`). */
function post(body: string | Buffer, options: { chunked?: boolean; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const u = new URL("/v1/chat/completions", url);
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    const headers: Record<string, string | number> = { "content-type": "application/json", ...options.headers };
    if (!options.chunked) headers["content-length"] = bytes.length;
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    // The gateway answers 413 before the whole body is sent; the answer may
    // still be on its way when the write fails. No answer within 2 s: the
    // exchange failed (status 0), never a hang.
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE" && e.code !== "ECONNRESET") reject(e);
      else setTimeout(() => resolve({ status: 0, body: `{"error":{"message":"${e.code ?? "?"} with no answer","type":"connection"}}` }), 2_000);
    });
    if (options.chunked) {
      for (let at = 0; at < bytes.length; at += 64 * 1024) req.write(bytes.subarray(at, at + 64 * 1024));
      req.end();
    } else {
      req.end(bytes);
    }
  });
}

/** Sends raw bytes on a TCP connection and returns the status line's code (for malformed HTTP itself). */
function rawHttp(bytes: string): Promise<number> {
  return new Promise((resolve) => {
    const port = Number(new URL(url).port);
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let text = "";
    socket.on("data", (d) => {
      text += d.toString("latin1");
    });
    const done = (): void => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0));
    socket.on("end", done);
    socket.on("close", done);
    socket.on("error", () => {});
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

const base = { model: "SmolLM3-3B", messages: [{ role: "user", content: "hi" }], max_tokens: 2 };
const json = (patch: Record<string, unknown>): string => JSON.stringify({ ...base, ...patch });
const nested = (depth: number, open = "[", close = "]"): string => open.repeat(depth) + close.repeat(depth);

/** [group, case, body, expected status, message pattern]. */
type HttpCase = [string, string, string | Buffer, number, RegExp, { chunked?: boolean }?];
const CASES: HttpCase[] = [
  ["malformed JSON", "unterminated object", "{not json", 400, /could not parse the JSON body/],
  ["malformed JSON", "truncated", '{"model":"SmolLM3-3B","messages":[{"role":"user","content":"hi"}', 400, /JSON/],
  ["malformed JSON", "empty body", "", 400, /JSON/],
  ["malformed JSON", "trailing garbage", `${json({})} x`, 400, /JSON/],
  ["malformed JSON", "null", "null", 400, /expected a JSON object/],
  ["malformed JSON", "array", "[]", 400, /expected a JSON object/],
  ["malformed JSON", "number", "42", 400, /expected a JSON object/],
  ["malformed JSON", "NaN literal", '{"model":"SmolLM3-3B","messages":[],"temperature":NaN}', 400, /JSON/],
  ["huge bodies", "5 MiB with content-length", json({ messages: [{ role: "user", content: "x".repeat(5 * 2 ** 20) }] }), 413, /too large/],
  ["huge bodies", "5 MiB chunked", json({ messages: [{ role: "user", content: "y".repeat(5 * 2 ** 20) }] }), 413, /too large/, { chunked: true }],
  ["deep nesting", "messages 1M levels deep", `{"model":"SmolLM3-3B","messages":${nested(1_000_000)}}`, 400, /messages/],
  ["deep nesting", "content 100k levels deep", `{"model":"SmolLM3-3B","messages":[{"role":"user","content":${nested(100_000)}}]}`, 400, /content/],
  ["deep nesting", "unknown field 1M levels deep", `{"model":"SmolLM3-3B","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"x":${nested(1_000_000)}}`, 200, /./],
  [
    "deep nesting",
    "tool parameters 100k levels deep",
    `{"model":"SmolLM3-3B","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${'{"type":"object","properties":{"a":'.repeat(100_000)}{"type":"string"}${"}}".repeat(100_000)}}}]}`,
    400,
    /parameters/,
  ],
  ["invalid UTF-8", "byte 0xFF", Buffer.concat([Buffer.from('{"model":"SmolLM3-3B","messages":[{"role":"user","content":"'), Buffer.from([0xff]), Buffer.from('"}]}')]), 400, /UTF-8/],
  ["invalid UTF-8", "overlong encoding", Buffer.concat([Buffer.from('{"model":"SmolLM3-3B","messages":[{"role":"user","content":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]}')]), 400, /UTF-8/],
  ["invalid UTF-8", "encoded surrogate", Buffer.concat([Buffer.from('{"model":"SmolLM3-3B","messages":[{"role":"user","content":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]}')]), 400, /UTF-8/],
  ["invalid UTF-8", "truncated sequence at the end", Buffer.concat([Buffer.from('{"model":"SmolLM3-3B","messages":[{"role":"user","content":"hi"}]}'), Buffer.from([0xe2, 0x82])]), 400, /UTF-8/],
  ["wrong types", "model is a number", json({ model: 5 }), 400, /'model'/],
  ["wrong types", "messages is an object", json({ messages: {} }), 400, /'messages'/],
  ["wrong types", "message is a string", json({ messages: ["hi"] }), 400, /messages\[0\]/],
  ["wrong types", "content is a number", json({ messages: [{ role: "user", content: 5 }] }), 400, /content/],
  ["wrong types", "content part of unknown type", json({ messages: [{ role: "user", content: [{ type: "image_url", image_url: "x" }] }] }), 400, /type/],
  ["wrong types", "max_tokens is a string", json({ max_tokens: "10" }), 400, /max_tokens/],
  ["wrong types", "temperature is a string", json({ temperature: "hot" }), 400, /temperature/],
  ["wrong types", "stream is a string", json({ stream: "yes" }), 400, /stream/],
  ["wrong types", "stop is a number", json({ stop: 5 }), 400, /stop/],
  ["wrong types", "stop holds a number", json({ stop: ["a", 1] }), 400, /stop\[1\]/],
  ["wrong types", "stream_options is an array", json({ stream_options: [] }), 400, /stream_options/],
  ["wrong types", "seed is a decimal", json({ seed: 1.5 }), 400, /seed/],
  ["negative or absurd numbers", "max_tokens -1", json({ max_tokens: -1 }), 400, /max_tokens/],
  ["negative or absurd numbers", "max_tokens 0", json({ max_tokens: 0 }), 400, /max_tokens/],
  ["negative or absurd numbers", "max_tokens 1e300", json({ max_tokens: 1e300 }), 400, /max_tokens/],
  ["negative or absurd numbers", "max_tokens 2^32", json({ max_tokens: 2 ** 32 }), 400, /max_tokens/],
  ["negative or absurd numbers", "max_tokens 100 000 (over the context)", json({ max_tokens: 100_000 }), 400, /context length/],
  ["negative or absurd numbers", "temperature -1", json({ temperature: -1 }), 400, /temperature/],
  ["negative or absurd numbers", "temperature 1e308", json({ temperature: 1e308 }), 400, /temperature/],
  ["negative or absurd numbers", "top_p 0", json({ top_p: 0 }), 400, /top_p/],
  ["negative or absurd numbers", "top_k -5", json({ top_k: -5 }), 400, /top_k/],
  ["negative or absurd numbers", "presence_penalty 3", json({ presence_penalty: 3 }), 400, /presence_penalty/],
  ["negative or absurd numbers", "n 2", json({ n: 2 }), 400, /\bn\b/],
  ["negative or absurd numbers", "5 stop sequences", json({ stop: ["a", "b", "c", "d", "e"] }), 400, /stop/],
  ["prompt over the context", "200 KB prompt", json({ messages: [{ role: "user", content: "Lorem ipsum dolor sit amet. ".repeat(7_000) }] }), 400, /maximum context length/],
  ["prompt over the context", "1 MB prompt", json({ messages: [{ role: "user", content: "Ça va très bien, merci ! ".repeat(40_000) }] }), 400, /maximum context length/],
  ["invalid tool schemas", "tools is a string", json({ tools: "get_weather" }), 400, /tools/],
  ["invalid tool schemas", "tool without a type", json({ tools: [{ function: { name: "f" } }] }), 400, /tools\[0\]\.type/],
  ["invalid tool schemas", "tool without a function", json({ tools: [{ type: "function" }] }), 400, /tools\[0\]\.function/],
  ["invalid tool schemas", "function without a name", json({ tools: [{ type: "function", function: {} }] }), 400, /name/],
  ["invalid tool schemas", "function name with spaces", json({ tools: [{ type: "function", function: { name: "get weather!" } }] }), 400, /name/],
  ["invalid tool schemas", "parameters is a string", json({ tools: [{ type: "function", function: { name: "f", parameters: "{}" } }] }), 400, /parameters/],
  ["invalid tool schemas", "tool_choice names a missing function", json({ tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } } }), 400, /tool_choice/],
  ["invalid tool schemas", "unknown tool_choice", json({ tools: [{ type: "function", function: { name: "f" } }], tool_choice: "sometimes" }), 400, /tool_choice/],
  ["invalid tool schemas", "response_format json_schema without a schema", json({ response_format: { type: "json_schema" } }), 400, /response_format/],
  ["unknown roles", "role wizard", json({ messages: [{ role: "wizard", content: "x" }] }), 400, /role/],
  ["unknown roles", "role is a number", json({ messages: [{ role: 5, content: "x" }] }), 400, /role/],
  ["unknown roles", "role missing", json({ messages: [{ content: "x" }] }), 400, /role/],
  ["unknown roles", "role empty", json({ messages: [{ role: "", content: "x" }] }), 400, /role/],
];

const results = new Map<string, { sent: number; answers: Record<string, number>; fiveXx: number }>();
function count(group: string, status: number, code: string): void {
  const g = results.get(group) ?? { sent: 0, answers: {}, fiveXx: 0 };
  g.sent++;
  const label = status === 200 ? "HTTP 200 (accepted: unknown field ignored)" : `HTTP ${status}${code ? ` ${code}` : ""}`;
  g.answers[label] = (g.answers[label] ?? 0) + 1;
  if (status >= 500) g.fiveXx++;
  results.set(group, g);
}

describe("bad input: HTTP", () => {
  for (const [group, name, body, expected, pattern, options] of CASES) {
    test(`${group}: ${name} → ${expected}`, async () => {
      const answer = await post(body, options);
      let code = "";
      let message = "";
      let param = "";
      if (answer.status !== 200) {
        const parsed = JSON.parse(answer.body) as { error?: { message?: string; type?: string; code?: string | null; param?: string | null } };
        assert.equal(typeof parsed.error?.type, "string", answer.body.slice(0, 300));
        message = parsed.error?.message ?? "";
        code = parsed.error?.code ?? parsed.error?.type ?? "";
        param = parsed.error?.param ?? "";
        assert.ok(message.length > 10 && message.length < 2_000, `unclear message: ${message.slice(0, 300)}`);
      }
      count(group, answer.status, code);
      assert.equal(answer.status, expected, `${answer.status}: ${answer.body.slice(0, 300)}`);
      // OpenAI's way: the message says what is wrong, `param` names the field.
      if (answer.status !== 200) assert.match(`${message} [param: ${param}]`, pattern);
    });
  }

  test("HTTP protocol: malformed request line, oversized headers, wrong method, unknown path", async () => {
    const line = await rawHttp("GARBAGE\r\n\r\n");
    const headers = await rawHttp(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(70_000)}\r\n\r\n`);
    const get = await fetch(`${url}/v1/chat/completions`);
    const unknown = await fetch(`${url}/v2/everything`, { method: "POST", body: "{}" });
    for (const [s, c] of [[line, ""], [headers, ""], [get.status, "method"], [unknown.status, "path"]] as const) count("HTTP protocol", s, c);
    assert.equal(line, 400);
    assert.ok(headers === 431 || headers === 400, `oversized headers: ${headers}`);
    assert.equal(get.status, 405);
    assert.match(((await get.json()) as { error: { message: string } }).error.message, /Method not allowed/);
    assert.equal(unknown.status, 404);
    await unknown.arrayBuffer();
  });
});

describe("bad input: gRPC", () => {
  const path = "/smollm.v1.ChatService/";
  const identity = (b: Buffer): Buffer => b;
  const call = (method: string, bytes: Buffer, streaming: boolean): Promise<ServiceError | null> =>
    new Promise((resolve) => {
      const client = new Client(cluster.gatewayGrpcAddress, credentials.createInsecure());
      const finish = (e: ServiceError | null): void => {
        client.close();
        resolve(e);
      };
      if (!streaming) {
        client.makeUnaryRequest(path + method, identity, identity, bytes, new Metadata(), { deadline: Date.now() + 30_000 }, (e) => finish(e));
        return;
      }
      const stream = client.makeServerStreamRequest(path + method, identity, identity, bytes, new Metadata(), { deadline: Date.now() + 30_000 });
      stream.on("data", () => {});
      stream.on("error", (e: ServiceError) => finish(e));
      stream.on("end", () => finish(null));
    });
  const encode = (params: Record<string, unknown>): Buffer =>
    Buffer.from(toBinary(publicApi.StreamChatCompletionRequestSchema, create(publicApi.StreamChatCompletionRequestSchema, { params: params as never })));
  const ok = { model: "SmolLM3-3B", messages: [{ role: "user", content: "hi" }], maxTokens: 2 };
  const gcases: [string, Buffer, number, RegExp][] = [
    ["garbage bytes", Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), status.INVALID_ARGUMENT, /malformed/],
    ["truncated message", encode(ok).subarray(0, 9), status.INVALID_ARGUMENT, /malformed/],
    ["wrong wire type", Buffer.from([0x0d, 0x01, 0x02, 0x03, 0x04]), status.INVALID_ARGUMENT, /malformed/],
    ["invalid UTF-8 in a string", Buffer.concat([Buffer.from([0x0a, 0x07, 0x0a, 0x05]), Buffer.from([0x53, 0x6d, 0xff, 0xfe, 0x4c])]), status.INVALID_ARGUMENT, /malformed/],
    ["no params", Buffer.alloc(0), status.INVALID_ARGUMENT, /params/],
    ["empty messages", encode({ ...ok, messages: [] }), status.INVALID_ARGUMENT, /messages/],
    ["unknown role", encode({ ...ok, messages: [{ role: "wizard", content: "x" }] }), status.INVALID_ARGUMENT, /role/],
    ["tool parameters not JSON", encode({ ...ok, tools: [{ name: "f", parameters: "{nope" }] }), status.INVALID_ARGUMENT, /parameters/],
    ["json_schema not JSON", encode({ ...ok, jsonSchema: "{nope" }), status.INVALID_ARGUMENT, /json_schema/],
    ["max_tokens over the context", encode({ ...ok, maxTokens: 100_000 }), status.INVALID_ARGUMENT, /context length/],
    ["temperature 1e30", encode({ ...ok, temperature: 1e30 }), status.INVALID_ARGUMENT, /temperature/],
    ["unknown model", encode({ ...ok, model: "gpt-4o" }), status.NOT_FOUND, /model/],
    ["5 MiB message", encode({ ...ok, messages: [{ role: "user", content: "z".repeat(5 * 2 ** 20) }] }), status.RESOURCE_EXHAUSTED, /larger than max/],
  ];
  for (const [name, bytes, expected, pattern] of gcases) {
    for (const streaming of [false, true]) {
      const method = streaming ? "StreamChatCompletion" : "CreateChatCompletion";
      test(`${method}: ${name} → ${status[expected]}`, async () => {
        const e = await call(method, bytes, streaming);
        const g = results.get("malformed protobuf / bad gRPC") ?? { sent: 0, answers: {}, fiveXx: 0 };
        g.sent++;
        const label = `gRPC ${e ? status[e.code] : "OK"}`;
        g.answers[label] = (g.answers[label] ?? 0) + 1;
        if (e && (e.code === status.INTERNAL || e.code === status.UNKNOWN || e.code === status.UNAVAILABLE)) g.fiveXx++;
        results.set("malformed protobuf / bad gRPC", g);
        assert.ok(e, "accepted");
        assert.equal(e.code, expected, `${status[e.code]}: ${e.details}`);
        assert.match(`${e.details} [param: ${String(e.metadata?.get("smollm-error-param")[0] ?? "")}]`, pattern);
      });
    }
  }
});

describe("bad input: fuzzing the live gateway", () => {
  test("fast-check: random hostile bodies never get a 5xx, always a JSON error body or a completion", async () => {
    const hostile = fc.oneof(
      { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      fc.constantFrom(null, -1, 0, 1e308, 2 ** 53, "", "\ud800", [], {}),
      fc.string({ unit: "binary", maxLength: 40 }),
    );
    const field = fc.constantFrom(
      "model", "messages", "temperature", "top_p", "top_k", "min_p", "seed", "stop", "n", "stream", "stream_options",
      "presence_penalty", "frequency_penalty", "tools", "tool_choice", "response_format", "logprobs", "top_logprobs",
      "reasoning_effort", "enable_thinking", "user",
    );
    const mutation = fc.array(fc.tuple(field, hostile), { minLength: 1, maxLength: 4 });
    const rawBody = fc.oneof(
      { weight: 6, arbitrary: mutation.map((m) => Buffer.from(JSON.stringify({ ...base, ...Object.fromEntries(m) }), "utf8")) },
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.string({ unit: "binary", maxLength: 200 }).map((s) => Buffer.from(s, "utf8")),
    );
    let runs = 0;
    let accepted = 0;
    const statuses: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(rawBody, async (bytes) => {
        runs++;
        const answer = await post(bytes);
        statuses[String(answer.status)] = (statuses[String(answer.status)] ?? 0) + 1;
        assert.ok(answer.status < 500, `${answer.status} for ${bytes.toString("utf8").slice(0, 200)}: ${answer.body.slice(0, 300)}`);
        if (answer.status === 200) {
          accepted++;
          return;
        }
        const parsed = JSON.parse(answer.body) as { error?: { message?: string } };
        assert.ok((parsed.error?.message ?? "").length > 0, answer.body.slice(0, 200));
      }),
      { numRuns: 250 },
    );
    const g = results.get("fuzzed bodies (fast-check)") ?? { sent: 0, answers: {}, fiveXx: 0 };
    g.sent += runs;
    for (const [s, n] of Object.entries(statuses)) {
      const label = s === "200" ? "HTTP 200 (valid after all: generated)" : `HTTP ${s}`;
      g.answers[label] = (g.answers[label] ?? 0) + n;
    }
    results.set("fuzzed bodies (fast-check)", g);
    assert.ok(accepted < runs, "every fuzzed body was valid: the fuzzer tested nothing");
  });
});

describe("bad input: aftermath", () => {
  test("the other clients were served, no process crashed, no 5xx was counted, slots are back to zero", async () => {
    const b = await bystander;
    const neighbours = await traffic.stop();
    const fiveXx =
      (await gatewayMetric(cluster.gateway, "smollm_gateway_requests_total", { status: "500" })) +
      (await gatewayMetric(cluster.gateway, "smollm_gateway_requests_total", { status: "503" }));
    const freeMs = await timeUntil("slots back to zero", async () => (await busySlots(cluster.workers)) === 0, 10_000);
    for (const [group, g] of results) {
      const failed: Record<string, number> = {};
      for (const [label, n] of Object.entries(g.answers)) addFailure(failed, label, n);
      recordCase({
        suite: SUITE,
        case: group,
        sent: g.sent,
        succeeded: 0,
        failed,
        lost: 0,
        expected: "4xx / INVALID_ARGUMENT with a clear message; no crash, no slot leak",
        notes: g.fiveXx > 0 ? `${g.fiveXx} server errors` : undefined,
      });
    }
    recordCase({
      suite: SUITE,
      case: "other clients during all of the above (a 900-token stream, 2 clients looping)",
      ...tally([b, ...neighbours]),
      recoveryMs: freeMs,
      expected: "unaffected",
      notes: `every process alive, ${fiveXx} 5xx counted, slots 0 ${freeMs} ms after the last request`,
    });
    assert.equal(b.outcome, "ok", `${b.outcome} ${b.errorCode} ${b.errorMessage}`);
    assert.deepEqual(neighbours.filter((r) => r.outcome !== "ok").map((r) => `${r.requestId} ${r.outcome} ${r.errorCode}`), []);
    assert.ok(neighbours.length > 10, `${neighbours.length} neighbour requests`);
    assert.equal(b.completionTokens, 900);
    for (const p of [cluster.gateway, cluster.scheduler, ...cluster.workers]) assert.ok(alive(p), `${p.label} exited`);
    assert.equal(fiveXx, 0);
    for (const [group, g] of results) assert.equal(g.fiveXx, 0, group);
  });
});
