/**
 * SmolLM3's capabilities through the real gateway (HTTP with the official
 * `openai` client, and the public gRPC API) with a scripted fake worker: the
 * worker streams raw model text (special tokens as text), split at awkward
 * places, and the tests check what clients get — reasoning apart from the
 * answer, function calls as `tool_calls`, log-probabilities — and what the
 * gateway asks of the cluster (rendered prompt, constraints).
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ClusterError, createLogger } from "@smollm/common";
import {
  FinishReason,
  SchedulerService,
  WorkerService,
  createClient,
  publicApi,
  serviceDefinition,
  serviceImplementation,
  startGrpcServer,
  type GenerateRequest,
  type GenerateResponseSchema,
  type GrpcServer,
  type RouteRequest,
} from "@smollm/proto";
import { loadConfig } from "./config.ts";
import { startGateway, type Gateway } from "./gateway.ts";

type Event = MessageInitShape<typeof GenerateResponseSchema>;

/** What the fake worker streams next: text pieces (each one token), with logprobs when asked. */
let script: string[] = [];
const generateCalls: GenerateRequest[] = [];
const routes: RouteRequest[] = [];

function fakeLogprob(piece: string) {
  const bytes = new TextEncoder().encode(piece);
  return { sampled: { token: piece, logprob: -0.5, bytes }, top: [{ token: piece, logprob: -0.5, bytes }, { token: "x", logprob: -2, bytes: new Uint8Array([120]) }] };
}

async function* fakeGenerate(request: GenerateRequest): AsyncGenerator<Event> {
  generateCalls.push(request);
  yield { event: { case: "started", value: { workerId: "worker-x", slot: 0, cachedTokens: 0, promptTokens: request.promptTokens.length } } };
  for (const piece of script) {
    yield {
      event: {
        case: "delta",
        value: { text: piece, tokens: 1, ...(request.logprobs ? { logprobs: [fakeLogprob(piece)] } : {}) },
      },
    };
  }
  yield {
    event: {
      case: "finished",
      value: { reason: FinishReason.STOP, usage: { promptTokens: request.promptTokens.length, completionTokens: script.length + 1, cachedTokens: 0 } },
    },
  };
}

/** Cuts `text` into pieces of 1..4 characters, tags included. */
function pieces(text: string): string[] {
  const out: string[] = [];
  for (let i = 0, k = 0; i < text.length; k++) {
    const n = 1 + (k % 4);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

const THINKING = "<think>\nThe user wants the weather.\n</think>\n\nIl fait beau à São Paulo.";
const CALL =
  '<think>\nI should call the tool.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "São Paulo", "unit": "celsius"}}\n</tool_call>';
const WEATHER_PARAMETERS = {
  type: "object",
  properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
  required: ["city"],
};
const tools: OpenAI.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Current weather of a city", parameters: WEATHER_PARAMETERS } },
];

describe("chat capabilities through the gateway (scripted worker)", () => {
  let worker: GrpcServer;
  let scheduler: GrpcServer;
  let gateway: Gateway;
  let client: OpenAI;
  let grpcClient: ReturnType<typeof createClient<typeof publicApi.ChatService.method>>;
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in São Paulo?" }];

  before(async () => {
    worker = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
      s.addService(
        serviceDefinition(WorkerService),
        serviceImplementation(WorkerService, { generate: fakeGenerate, getStatus: async () => ({ workerId: "worker-x" }) }),
      );
    });
    scheduler = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
      s.addService(
        serviceDefinition(SchedulerService),
        serviceImplementation(SchedulerService, {
          route: async (request) => {
            routes.push(request);
            return {
              workerId: "worker-x",
              workerAddress: `127.0.0.1:${worker.port}`,
              promptTokens: Array.from({ length: Math.ceil(request.prompt.length / 4) }, (_, i) => i % 1000),
              contextSize: 65_536,
              outcome: "load",
            };
          },
        }),
      );
    });
    const config = {
      ...loadConfig({ argv: [], env: {} }),
      host: "127.0.0.1",
      port: 0,
      grpcPort: 0,
      schedulerAddress: `127.0.0.1:${scheduler.port}`,
      logLevel: "silent" as const,
    };
    gateway = await startGateway(config, createLogger({ service: "gateway", level: "silent" }));
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gateway.port}/v1`, apiKey: "x", maxRetries: 0 });
    grpcClient = createClient(publicApi.ChatService, `127.0.0.1:${gateway.grpcPort}`);
  });

  after(async () => {
    grpcClient.close();
    await gateway.close();
    await Promise.all([worker.close(100), scheduler.close(100)]);
  });

  beforeEach(() => {
    script = [];
    generateCalls.length = 0;
    routes.length = 0;
  });

  test("reasoning: reasoning_content apart from content, streamed and not, HTTP and gRPC", async () => {
    script = pieces(THINKING);
    const whole = await client.chat.completions.create({ model: "SmolLM3-3B", messages });
    const message = whole.choices[0]?.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    assert.equal(message.reasoning_content, "The user wants the weather.");
    assert.equal(message.content, "Il fait beau à São Paulo.");
    assert.equal(whole.choices[0]?.finish_reason, "stop");

    const stream = await client.chat.completions.create({ model: "SmolLM3-3B", messages, stream: true });
    let reasoning = "";
    let content = "";
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? "";
      content += delta?.content ?? "";
      for (const t of ["<think>", "</think>", "<"]) assert.ok(!(delta?.content ?? "").includes(t), JSON.stringify(delta));
    }
    assert.equal(reasoning, "The user wants the weather.");
    assert.equal(content, "Il fait beau à São Paulo.");

    const params = { model: "SmolLM3-3B", messages: [{ role: "user", content: "Weather?" }] };
    const unary = await grpcClient.createChatCompletion({ params });
    assert.equal(unary.message?.reasoningContent, "The user wants the weather.");
    assert.equal(unary.message?.content, "Il fait beau à São Paulo.");
    let gReasoning = "";
    let gContent = "";
    for await (const chunk of grpcClient.streamChatCompletion({ params })) {
      gReasoning += chunk.reasoningContent;
      gContent += chunk.content;
    }
    assert.equal(gReasoning, unary.message?.reasoningContent);
    assert.equal(gContent, unary.message?.content);
  });

  test("reasoning switches: default on, /no_think, enable_thinking, chat_template_kwargs, reasoning_effort", async () => {
    script = ["ok"];
    const ask = async (extra: Record<string, unknown>, system?: string): Promise<string> => {
      routes.length = 0;
      const msgs: OpenAI.ChatCompletionMessageParam[] = system === undefined ? messages : [{ role: "system", content: system }, ...messages];
      await client.chat.completions.create({ model: "SmolLM3-3B", messages: msgs, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      return routes[0]?.prompt ?? "";
    };
    const on = (p: string) => p.includes("Reasoning Mode: /think") && p.endsWith("<|im_start|>assistant\n");
    const off = (p: string) => p.includes("Reasoning Mode: /no_think") && p.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n");
    assert.ok(on(await ask({})));
    assert.ok(off(await ask({}, "Be brief. /no_think")));
    assert.ok(on(await ask({}, "Be thorough. /think")));
    assert.ok(off(await ask({ reasoning_effort: "none" })));
    // A request field wins over the system prompt's flag.
    assert.ok(on(await ask({ reasoning_effort: "high" }, "/no_think")));
    assert.ok(off(await ask({ chat_template_kwargs: { enable_thinking: false } })));
    assert.ok(on(await ask({ enable_thinking: true }, "x /no_think")));
    assert.ok(off(await ask({ chat_template_kwargs: { enable_thinking: false }, reasoning_effort: "high" })));
  });

  test("tool calls: streamed with id, index and argument pieces; round trip renders call and result back", async () => {
    script = pieces(CALL);
    const stream = await client.chat.completions.create({ model: "SmolLM3-3B", messages, tools, stream: true });
    const calls: { id: string; name: string; arguments: string }[] = [];
    let finish: string | null = null;
    let argumentPieces = 0;
    let reasoning = "";
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      finish = choice?.finish_reason ?? finish;
      assert.ok(!(choice?.delta.content ?? "").includes("<"), "no raw tags in content");
      reasoning += (choice?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? "";
      for (const d of choice?.delta.tool_calls ?? []) {
        if (d.id !== undefined) calls[d.index] = { id: d.id, name: d.function?.name ?? "", arguments: "" };
        const call = calls[d.index];
        assert.ok(call);
        call.arguments += d.function?.arguments ?? "";
        if ((d.function?.arguments ?? "") !== "") argumentPieces++;
      }
    }
    assert.equal(finish, "tool_calls");
    assert.equal(reasoning, "I should call the tool.");
    assert.equal(calls.length, 1);
    assert.match(calls[0]?.id ?? "", /^call_[0-9a-f]{24}$/);
    assert.equal(calls[0]?.name, "get_weather");
    assert.deepEqual(JSON.parse(calls[0]?.arguments ?? ""), { city: "São Paulo", unit: "celsius" });
    assert.ok(argumentPieces > 3, `arguments streamed in ${argumentPieces} pieces`);

    // Same output, whole.
    const whole = await client.chat.completions.create({ model: "SmolLM3-3B", messages, tools });
    const msg = whole.choices[0]?.message;
    assert.equal(whole.choices[0]?.finish_reason, "tool_calls");
    assert.equal(msg?.content, null);
    const call = msg?.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.equal(call.function.arguments, calls[0]?.arguments);

    // The tool's result goes back; the final answer comes.
    script = pieces("<think>\nGot it.\n</think>\n\nIl fait 22 °C à São Paulo.");
    routes.length = 0;
    const final = await client.chat.completions.create({
      model: "SmolLM3-3B",
      tools,
      messages: [...messages, msg as OpenAI.ChatCompletionMessageParam, { role: "tool", tool_call_id: call.id, content: '{"temp_c": 22}' }],
    });
    assert.equal(final.choices[0]?.message.content, "Il fait 22 °C à São Paulo.");
    assert.equal(final.choices[0]?.finish_reason, "stop");
    const prompt = routes[0]?.prompt ?? "";
    assert.ok(prompt.includes("### Tools\n\nYou may call one or more functions"), "tools in the system turn");
    assert.ok(prompt.includes('"name": "get_weather", "description": "Current weather of a city"'));
    assert.ok(
      prompt.includes(
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "São Paulo", "unit": "celsius"}}\n</tool_call><|im_end|>\n' +
          '<|im_start|>user\n{"temp_c": 22}<|im_end|>\n<|im_start|>assistant\n',
      ),
      prompt.slice(-400),
    );
  });

  test("tool calls over gRPC, streamed and not", async () => {
    script = pieces(CALL);
    const params = {
      model: "SmolLM3-3B",
      messages: [{ role: "user", content: "Weather in São Paulo?" }],
      tools: [{ name: "get_weather", description: "d", parameters: JSON.stringify(WEATHER_PARAMETERS) }],
      toolChoice: "auto",
    };
    const unary = await grpcClient.createChatCompletion({ params });
    assert.equal(unary.finishReason, "tool_calls");
    assert.equal(unary.message?.toolCalls[0]?.name, "get_weather");
    assert.deepEqual(JSON.parse(unary.message?.toolCalls[0]?.arguments ?? ""), { city: "São Paulo", unit: "celsius" });
    assert.equal(unary.message?.content, "");
    let args = "";
    let id = "";
    let finish = "";
    for await (const chunk of grpcClient.streamChatCompletion({ params })) {
      for (const d of chunk.toolCalls) {
        if (d.id !== "") {
          id = d.id;
          assert.equal(d.name, "get_weather");
        }
        args += d.arguments;
      }
      assert.ok(!chunk.content.includes("<"));
      if (chunk.finishReason !== "") finish = chunk.finishReason;
    }
    assert.match(id, /^call_/);
    assert.equal(args, unary.message?.toolCalls[0]?.arguments);
    assert.equal(finish, "tool_calls");
  });

  test("tool_choice required / named and response_format constrain the worker; none hides the tools", async () => {
    script = pieces('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>');
    await client.chat.completions.create({ model: "SmolLM3-3B", messages, tools, tool_choice: "required", parallel_tool_calls: false });
    const forced = generateCalls.at(-1);
    assert.equal(forced?.jsonPrefix, "<tool_call>\n");
    assert.equal(forced?.jsonSuffix, "\n</tool_call>");
    assert.equal(forced?.jsonMaxValues, 1);
    assert.deepEqual(JSON.parse(forced?.jsonSchema ?? ""), {
      type: "object",
      properties: {
        name: { const: "get_weather" },
        arguments: {
          type: "object",
          properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] } },
          additionalProperties: false,
        },
      },
    });
    await client.chat.completions.create({
      model: "SmolLM3-3B",
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    assert.equal(generateCalls.at(-1)?.jsonMaxValues, 8);

    script = ['{"answer": ', '"<think>x</think>"}'];
    const structured = await client.chat.completions.create({
      model: "SmolLM3-3B",
      messages,
      response_format: {
        type: "json_schema",
        json_schema: { name: "answer", schema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] } },
      },
    });
    assert.deepEqual(JSON.parse(structured.choices[0]?.message.content ?? ""), { answer: "<think>x</think>" });
    assert.deepEqual(JSON.parse(generateCalls.at(-1)?.jsonSchema ?? ""), {
      type: "object",
      properties: { answer: { type: "string" } },
      additionalProperties: false,
    });
    assert.equal(generateCalls.at(-1)?.jsonPrefix, "");

    routes.length = 0;
    script = ["plain"];
    await client.chat.completions.create({ model: "SmolLM3-3B", messages, tools, tool_choice: "none" });
    assert.ok(!(routes[0]?.prompt ?? "").includes("### Tools"));
    assert.equal(generateCalls.at(-1)?.jsonSchema, "");
  });

  test("logprobs: OpenAI's shape over HTTP (whole and streamed) and gRPC", async () => {
    script = pieces(THINKING);
    const whole = await client.chat.completions.create({ model: "SmolLM3-3B", messages, logprobs: true, top_logprobs: 2 });
    assert.equal(generateCalls.at(-1)?.logprobs, true);
    assert.equal(generateCalls.at(-1)?.topLogprobs, 2);
    const content = whole.choices[0]?.logprobs?.content ?? [];
    assert.equal(content.length, script.length);
    assert.equal(Buffer.from(content.flatMap((c) => c.bytes ?? [])).toString("utf8"), THINKING);
    assert.equal(content[0]?.top_logprobs.length, 2);
    assert.equal(content[0]?.logprob, -0.5);

    const stream = await client.chat.completions.create({ model: "SmolLM3-3B", messages, logprobs: true, stream: true });
    let tokens = 0;
    for await (const chunk of stream) tokens += chunk.choices[0]?.logprobs?.content?.length ?? 0;
    assert.equal(tokens, script.length);

    const unary = await grpcClient.createChatCompletion({ params: { model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }], logprobs: true, topLogprobs: 1 } });
    assert.equal(unary.logprobs.length, script.length);
    let streamed = 0;
    for await (const chunk of grpcClient.streamChatCompletion({ params: { model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }], logprobs: true } })) {
      streamed += chunk.logprobs.length;
    }
    assert.equal(streamed, script.length);
  });

  test("an invalid call is a clear 500 (whole), an SSE error (streamed), INTERNAL (gRPC)", async () => {
    script = pieces('<tool_call>\n{"name": "get_weather", "arguments": {"unit": "kelvin"}}\n</tool_call>');
    await assert.rejects(client.chat.completions.create({ model: "SmolLM3-3B", messages, tools }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 500);
      assert.equal(e.code, "invalid_model_output");
      assert.match(e.message, /missing required property 'city'/);
      return true;
    });
    await assert.rejects(async () => {
      const stream = await client.chat.completions.create({ model: "SmolLM3-3B", messages, tools, stream: true });
      for await (const _ of stream) void _;
    }, /missing required property 'city'/);
    await assert.rejects(
      grpcClient.createChatCompletion({
        params: {
          model: "SmolLM3-3B",
          messages: [{ role: "user", content: "x" }],
          tools: [{ name: "get_weather", parameters: JSON.stringify(WEATHER_PARAMETERS) }],
        },
      }),
      (e: unknown) => e instanceof ClusterError && e.code === "internal" && /missing required property 'city'/.test(e.message),
    );
  });

  test("bad capability fields are 400s naming the field; unknown fields are ignored", async () => {
    const bad: [Record<string, unknown>, string, RegExp][] = [
      [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "a" } } } }, "response_format.json_schema.schema.pattern", /not supported/],
      [{ response_format: { type: "yaml" } }, "response_format.type", /Supported values/],
      [{ response_format: { type: "json_object" }, tools, tool_choice: "required" }, "response_format", /cannot be combined/],
      [{ tools, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice.function.name", /nope/],
      [{ tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { n: { type: "number", maximum: 3 } } } } }], tool_choice: "required" }, "tools[0].function.parameters.properties.n.maximum", /not supported/],
      [{ top_logprobs: 3 }, "top_logprobs", /'logprobs' must be set to true/],
      [{ logprobs: true, top_logprobs: 21 }, "top_logprobs", /maximum/],
      [{ logprobs: "yes" }, "logprobs", /boolean/],
      [{ reasoning_effort: "max" }, "reasoning_effort", /Supported values/],
      [{ n: 2 }, "n", /only n=1/],
      [{ parallel_tool_calls: 1 }, "parallel_tool_calls", /boolean/],
      [{ max_completion_tokens: "8" }, "max_completion_tokens", /integer/],
    ];
    for (const [extra, param, message] of bad) {
      const res = await fetch(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "SmolLM3-3B", messages, ...extra }),
      });
      const body = (await res.json()) as { error: { param: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(extra));
      assert.equal(body.error.param, param);
      assert.match(body.error.message, message);
    }
    script = ["fine"];
    const ok = await client.chat.completions.create({
      model: "SmolLM3-3B",
      messages,
      max_completion_tokens: 5,
      // @ts-expect-error unknown fields are ignored, as OpenAI does
      some_future_field: { a: 1 },
    });
    assert.equal(ok.choices[0]?.message.content, "fine");
    assert.equal(generateCalls.at(-1)?.maxTokens, 5);
  });
});
