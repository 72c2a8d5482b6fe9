/**
 * SmolLM3's own capabilities through the whole cluster (gateway → scheduler →
 * workers, real processes, node-llama-cpp) on the `tiny:llama3` model — random
 * weights over the real 128,256-token SmolLM3 vocabulary, so token counts are
 * realistic — over HTTP with the official `openai` client and over the public
 * gRPC API, streaming and not: reasoning on and off, function calls forced by
 * a grammar (a round trip with the tool's result), structured output against
 * a JSON schema, six languages, stop sequences, seeds, logprobs and limits.
 *
 * Random weights write gibberish, so what the model says is never checked;
 * what the cluster guarantees around it is: shapes, grammars, counts, bytes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { renderChatPrompt, type ChatMessage, type RenderChatPromptOptions } from "@smollm/chat";
import { ensureTinyModel } from "@smollm/gguf";
import { loadTokenizer, type Tokenizer } from "@smollm/model";
import { createClient, publicApi, type ServiceClient } from "@smollm/proto";
import { startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { readSse } from "./helpers.ts";

const MODEL = "SmolLM3-3B";
let cluster: LocalCluster;
let client: OpenAI;
let grpc: ServiceClient<typeof publicApi.ChatService.method>;
let tokenizer: Tokenizer;

before(async () => {
  const [started, tok] = await Promise.all([
    startLocalCluster({
      model: "tiny:llama3",
      workers: 2,
      privateRedis: true,
      workerArgs: () => ["--slots", "4", "--context-size", "2048", "--threads", "1"],
    }),
    ensureTinyModel({ vocab: "llama3" }).then((path) => loadTokenizer(path)),
  ]);
  cluster = started;
  tokenizer = tok;
  client = new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0 });
  grpc = createClient(publicApi.ChatService, cluster.gatewayGrpcAddress);
});

after(async () => {
  grpc?.close();
  await cluster?.stop();
  await tokenizer?.close();
});

/** Prompt tokens the model's own tokenizer gives for the prompt the gateway renders (today's date, or yesterday's at midnight). */
function expectedPromptTokens(messages: ChatMessage[], options: RenderChatPromptOptions): number[] {
  const now = Date.now();
  return [now, now - 86_400_000].map((t) => tokenizer.tokenize(renderChatPrompt(messages, { ...options, today: new Date(t) })).length);
}

const WEATHER_PARAMETERS = {
  type: "object",
  properties: {
    city: { type: "string", maxLength: 24 },
    unit: { type: "string", enum: ["celsius", "fahrenheit"] },
    days: { type: "integer" },
  },
  required: ["city", "unit"],
  additionalProperties: false,
} as const;
const tools: OpenAI.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Current weather of a city", parameters: WEATHER_PARAMETERS } },
  { type: "function", function: { name: "get_time", description: "Local time of a city", parameters: { type: "object", properties: { city: { type: "string", maxLength: 24 } }, required: ["city"] } } },
];

/** No lone surrogate: the text survives a UTF-8 round trip. */
function wellFormed(text: string): boolean {
  return Buffer.from(text, "utf8").toString("utf8") === text;
}

function checkWeatherArgs(json: string): void {
  const args = JSON.parse(json) as Record<string, unknown>;
  assert.equal(typeof args["city"], "string");
  assert.ok(["celsius", "fahrenheit"].includes(args["unit"] as string), json);
  assert.ok(args["days"] === undefined || Number.isInteger(args["days"]), json);
  assert.deepEqual(Object.keys(args).filter((k) => !["city", "unit", "days"].includes(k)), []);
}

describe("capabilities: tiny:llama3 through the cluster", () => {
  test("reasoning on and off: prompt, token counts, no tags in content (HTTP and gRPC, streamed and not)", async () => {
    const user: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is 2 + 2? Answer briefly." }];
    const asChat: ChatMessage[] = [{ role: "user", content: "What is 2 + 2? Answer briefly." }];
    const on = await client.chat.completions.create({ model: MODEL, messages: user, max_tokens: 12, temperature: 0 });
    const offs = await Promise.all([
      client.chat.completions.create({ model: MODEL, messages: user, max_tokens: 12, temperature: 0, reasoning_effort: "none" }),
      // An extension (vLLM, llama-server) the SDK's types do not know.
      client.chat.completions.create({
        model: MODEL,
        messages: user,
        max_tokens: 12,
        temperature: 0,
        chat_template_kwargs: { enable_thinking: false },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      client.chat.completions.create({ model: MODEL, messages: [{ role: "system", content: "/no_think" }, ...user], max_tokens: 12, temperature: 0 }),
    ]);
    // The think preamble is much longer than the no-think one; counts are the tokenizer's.
    assert.ok(expectedPromptTokens(asChat, {}).includes(on.usage?.prompt_tokens ?? -1), `think prompt ${on.usage?.prompt_tokens}`);
    assert.ok(expectedPromptTokens(asChat, { enableThinking: false }).includes(offs[0]?.usage?.prompt_tokens ?? -1));
    assert.equal(offs[1]?.usage?.prompt_tokens, offs[0]?.usage?.prompt_tokens);
    assert.ok((on.usage?.prompt_tokens ?? 0) > (offs[0]?.usage?.prompt_tokens ?? 0) + 100);
    for (const r of [on, ...offs]) {
      const m = r.choices[0]?.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
      for (const tag of ["<think>", "</think>"]) {
        assert.ok(!(m.content ?? "").includes(tag));
        assert.ok(!(m.reasoning_content ?? "").includes(tag));
      }
    }

    // Streamed, HTTP and gRPC: the same separation.
    const stream = await client.chat.completions.create({ model: MODEL, messages: user, max_tokens: 12, stream: true, reasoning_effort: "none" });
    for await (const chunk of stream) assert.ok(!(chunk.choices[0]?.delta.content ?? "").includes("<think>"));
    const params = { model: MODEL, messages: [{ role: "user", content: "2 + 2?" }], maxTokens: 12, enableThinking: false };
    const unary = await grpc.createChatCompletion({ params });
    assert.ok(!unary.message?.content.includes("<think>"));
    assert.equal(unary.message?.reasoningContent, "");
    for await (const chunk of grpc.streamChatCompletion({ params: { ...params, enableThinking: true } })) {
      assert.ok(!chunk.content.includes("<think>") && !chunk.reasoningContent.includes("<think>"));
    }
  });

  test("tool calls: required and named calls are valid even from random weights; round trip with the result", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "system", content: "You can check the weather. /no_think" },
      { role: "user", content: "Quel temps fait-il à São Paulo ?" },
    ];
    const first = await client.chat.completions.create({
      model: MODEL,
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      max_tokens: 200,
      temperature: 0.7,
      seed: 11,
    });
    const choice = first.choices[0];
    assert.equal(choice?.finish_reason, "tool_calls");
    assert.equal(choice?.message.content, null);
    const call = choice?.message.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.equal(choice?.message.tool_calls?.length, 1);
    assert.match(call.id, /^call_/);
    assert.equal(call.function.name, "get_weather");
    checkWeatherArgs(call.function.arguments);

    // The tool answers; the model answers in turn (no more calls: tool_choice none).
    const followUp = await client.chat.completions.create({
      model: MODEL,
      messages: [
        ...messages,
        choice?.message as OpenAI.ChatCompletionMessageParam,
        { role: "tool", tool_call_id: call.id, content: '{"temp_c": 22, "sky": "ensoleillé"}' },
      ],
      tools,
      tool_choice: "none",
      max_tokens: 16,
    });
    assert.ok(["stop", "length"].includes(followUp.choices[0]?.finish_reason ?? ""));
    assert.equal(followUp.choices[0]?.message.tool_calls, undefined);
    // The call went back as a <tool_call> block and the result as a user turn: the counts say so exactly.
    const history: ChatMessage[] = [
      { role: "system", content: "You can check the weather. /no_think" },
      { role: "user", content: "Quel temps fait-il à São Paulo ?" },
      { role: "assistant", content: "", toolCalls: [{ id: call.id, name: call.function.name, arguments: call.function.arguments }] },
      { role: "tool", content: '{"temp_c": 22, "sky": "ensoleillé"}', toolCallId: call.id },
    ];
    assert.ok(expectedPromptTokens(history, {}).includes(followUp.usage?.prompt_tokens ?? -1), `follow-up prompt ${followUp.usage?.prompt_tokens}`);

    // Streamed, `required` (any function): id and name first, then argument pieces.
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      tools,
      tool_choice: "required",
      parallel_tool_calls: false,
      max_tokens: 200,
      stream: true,
      temperature: 0.7,
      seed: 5,
    });
    let name = "";
    let args = "";
    let pieces = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      finish = c?.finish_reason ?? finish;
      assert.ok(!(c?.delta.content ?? "").includes("<tool_call>"));
      for (const d of c?.delta.tool_calls ?? []) {
        assert.equal(d.index, 0);
        if (d.id !== undefined) name = d.function?.name ?? "";
        if ((d.function?.arguments ?? "") !== "") pieces++;
        args += d.function?.arguments ?? "";
      }
    }
    assert.equal(finish, "tool_calls");
    assert.ok(["get_weather", "get_time"].includes(name), name);
    if (name === "get_weather") checkWeatherArgs(args);
    else assert.equal(typeof (JSON.parse(args) as { city: unknown }).city, "string");
    assert.ok(pieces >= 2, `arguments in ${pieces} pieces`);

    // gRPC, whole.
    const unary = await grpc.createChatCompletion({
      params: {
        model: MODEL,
        messages: [{ role: "user", content: "Weather in Lisboa? /no_think" }],
        tools: [{ name: "get_weather", description: "weather", parameters: JSON.stringify(WEATHER_PARAMETERS) }],
        toolChoice: "get_weather",
        parallelToolCalls: false,
        maxTokens: 200,
        temperature: 0.7,
        seed: 3,
      },
    });
    assert.equal(unary.finishReason, "tool_calls");
    assert.equal(unary.message?.toolCalls[0]?.name, "get_weather");
    checkWeatherArgs(unary.message?.toolCalls[0]?.arguments ?? "");
  });

  test("structured output: a JSON-schema answer parsed and validated (HTTP whole and streamed, gRPC); bad schemas are 400s", async () => {
    const schema = {
      type: "object",
      properties: {
        language: { type: "string", enum: ["en", "fr", "es", "de", "it", "pt"] },
        confident: { type: "boolean" },
        score: { type: "integer" },
        words: { type: "array", items: { type: "string", maxLength: 12 }, maxItems: 3 },
        detail: { type: "object", properties: { note: { type: ["string", "null"], maxLength: 16 } }, required: ["note"] },
      },
      required: ["language", "confident", "score", "words", "detail"],
      additionalProperties: false,
    };
    const check = (text: string): void => {
      const v = JSON.parse(text) as Record<string, unknown>;
      assert.ok(["en", "fr", "es", "de", "it", "pt"].includes(v["language"] as string), text);
      assert.equal(typeof v["confident"], "boolean");
      assert.ok(Number.isInteger(v["score"]), text);
      assert.ok(Array.isArray(v["words"]) && (v["words"] as unknown[]).length <= 3 && (v["words"] as unknown[]).every((w) => typeof w === "string"));
      const detail = v["detail"] as Record<string, unknown>;
      assert.ok(detail["note"] === null || typeof detail["note"] === "string");
      assert.deepEqual(Object.keys(v).sort(), ["confident", "detail", "language", "score", "words"]);
    };
    const response_format = { type: "json_schema" as const, json_schema: { name: "analysis", schema, strict: true } };
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Analyse: « Où est la gare ? »" }];
    const whole = await client.chat.completions.create({ model: MODEL, messages, response_format, max_tokens: 300, temperature: 0.8, seed: 1 });
    assert.equal(whole.choices[0]?.finish_reason, "stop");
    check(whole.choices[0]?.message.content ?? "");

    const stream = await client.chat.completions.create({ model: MODEL, messages, response_format, max_tokens: 300, stream: true, temperature: 0.8, seed: 2 });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    check(text);

    const g = await grpc.createChatCompletion({
      params: { model: MODEL, messages: [{ role: "user", content: "Analyse this." }], jsonSchema: JSON.stringify(schema), maxTokens: 300, temperature: 0.8, seed: 4 },
    });
    assert.equal(g.finishReason, "stop");
    check(g.message?.content ?? "");

    // json_object: an object, whatever the weights (it may be cut by max_tokens: its start is checked then).
    const obj = await client.chat.completions.create({ model: MODEL, messages, response_format: { type: "json_object" }, max_tokens: 40, temperature: 0 });
    const content = obj.choices[0]?.message.content ?? "";
    assert.match(content, /^\{/);
    if (obj.choices[0]?.finish_reason === "stop") assert.equal(typeof JSON.parse(content), "object");

    const res = await fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        messages,
        response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { email: { type: "string", format: "email" } } } } },
      }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { param: string; message: string } };
    assert.equal(body.error.param, "response_format.json_schema.schema.properties.email.format");
    assert.match(body.error.message, /format 'email' is not supported/);
  });

  const LANGUAGES: Record<string, string> = {
    en: "Hello! Could you tell me a short story about a curious cat?",
    fr: "Bonjour ! Peux-tu me raconter une courte histoire sur un chat curieux ? Ça m'intéresserait beaucoup, s'il te plaît.",
    es: "¡Hola! ¿Podrías contarme una historia corta sobre un gato curioso? Mañana la leeré con mi niño.",
    de: "Hallo! Könntest du mir eine kurze Geschichte über eine neugierige Katze erzählen? Größe und Spaß sind mir wichtig.",
    it: "Ciao! Potresti raccontarmi una breve storia su un gatto curioso? Perché è la mia città preferita.",
    pt: "Olá! Você poderia me contar uma história curta sobre um gato curioso? Não é difícil, é só uma canção.",
  };

  test("six languages: exact prompt token counts, whole UTF-8 in every SSE and gRPC chunk, logprob bytes rebuild the text", async () => {
    for (const [lang, text] of Object.entries(LANGUAGES)) {
      const messages: ChatMessage[] = [{ role: "user", content: text }];
      const expected = expectedPromptTokens(messages, { enableThinking: false });
      const res = await fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: MODEL,
          messages,
          max_tokens: 32,
          stream: true,
          stream_options: { include_usage: true },
          reasoning_effort: "none",
          logprobs: true,
          temperature: 1,
          seed: 7,
        }),
      });
      assert.equal(res.status, 200, lang);
      const events = await readSse(res.body!); // a fatal TextDecoder: broken UTF-8 anywhere throws
      assert.equal(events.at(-1), "[DONE]");
      type Chunk = {
        choices: { delta: { content?: string }; logprobs: { content: { bytes: number[] }[] } | null; finish_reason: string | null }[];
        usage?: OpenAI.CompletionUsage;
      };
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Chunk);
      let content = "";
      const bytes: number[] = [];
      let finish = "";
      for (const chunk of chunks) {
        for (const c of chunk.choices) {
          content += c.delta.content ?? "";
          for (const entry of c.logprobs?.content ?? []) bytes.push(...entry.bytes);
          finish = c.finish_reason ?? finish;
        }
      }
      const usage = chunks.at(-1)?.usage;
      assert.ok(expected.includes(usage?.prompt_tokens ?? -1), `${lang}: prompt_tokens ${usage?.prompt_tokens}, tokenizer says ${expected[0]}`);
      // One logprob entry per sampled token (the end-of-generation token excepted).
      const entries = chunks.reduce((n, c) => n + c.choices.reduce((m, ch) => m + (ch.logprobs?.content.length ?? 0), 0), 0);
      assert.equal(entries, (usage?.completion_tokens ?? 0) - (finish === "stop" ? 1 : 0), lang);
      // The tokens' bytes are the text (split characters included), unless the model emitted tags the parser took out.
      const raw = new TextDecoder().decode(new Uint8Array(bytes));
      if (!/<\/?think>|<\/?tool_call>/.test(raw)) assert.equal(raw.trimStart(), content, lang);

      let grpcText = "";
      let grpcUsage: publicApi.Usage | undefined;
      for await (const chunk of grpc.streamChatCompletion({ params: { model: MODEL, messages, maxTokens: 32, enableThinking: false, temperature: 1, seed: 7 } })) {
        assert.ok(wellFormed(chunk.content), `${lang}: a gRPC chunk is not well-formed UTF-8`);
        grpcText += chunk.content;
        grpcUsage = chunk.usage ?? grpcUsage;
      }
      assert.ok(expected.includes(grpcUsage?.promptTokens ?? -1), lang);
      assert.ok((grpcUsage?.completionTokens ?? 0) > 0 && wellFormed(grpcText));
    }
  });

  test("stop sequences, seeds, max_completion_tokens, top_logprobs, n, unknown fields and wrong types", async () => {
    const base = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "Écris une phrase sur la mer, s'il te plaît." }],
      reasoning_effort: "none" as const,
      temperature: 1,
      seed: 1234,
      max_tokens: 24,
    };
    // The same seed gives the same completion, over HTTP and gRPC.
    const a = await client.chat.completions.create(base);
    const b = await client.chat.completions.create(base);
    const text = a.choices[0]?.message.content ?? "";
    assert.equal(b.choices[0]?.message.content, text);
    const g = await grpc.createChatCompletion({
      params: { model: MODEL, messages: base.messages, reasoningEffort: "none", temperature: 1, seed: 1234, maxTokens: 24 },
    });
    assert.equal(g.message?.content, text);

    // A stop sequence taken from a completion cuts it there. Greedy: sampling
    // at temperature 1 over the random model's nearly flat distribution can
    // turn on float noise (a cached prefix vs a full prefill), argmax hardly.
    const greedy = { ...base, temperature: 0 };
    const reference = (await client.chat.completions.create(greedy)).choices[0]?.message.content ?? "";
    const chars = [...reference];
    const at = chars.findIndex((c, i) => i >= 3 && c.trim() !== "" && c !== "<" && c !== "\uFFFD");
    if (at > 0) {
      const stop = chars[at] as string;
      const cut = reference.slice(0, reference.indexOf(stop));
      const stopped = await client.chat.completions.create({ ...greedy, stop: [stop, "\u0000never"] });
      assert.equal(stopped.choices[0]?.message.content, cut);
      assert.equal(stopped.choices[0]?.finish_reason, "stop");
    }

    // max_completion_tokens is max_tokens.
    const { max_tokens: _unused, ...withoutMaxTokens } = base;
    const short = await client.chat.completions.create({ ...withoutMaxTokens, max_completion_tokens: 3 });
    assert.ok((short.usage?.completion_tokens ?? 99) <= 3);

    // top_logprobs: the alternatives, most likely first, the sampled one among them when greedy.
    const lp = await client.chat.completions.create({ ...base, temperature: 0, logprobs: true, top_logprobs: 3, max_tokens: 6 });
    for (const entry of lp.choices[0]?.logprobs?.content ?? []) {
      assert.equal(entry.top_logprobs.length, 3);
      assert.equal(entry.top_logprobs[0]?.token, entry.token);
      assert.ok(entry.top_logprobs[0]!.logprob >= entry.top_logprobs[2]!.logprob);
    }

    // n > 1 is refused clearly; unknown fields are ignored; wrong types are 400s.
    await assert.rejects(client.chat.completions.create({ ...base, n: 2 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "n");
    // @ts-expect-error unknown fields are ignored, as OpenAI does
    const ok = await client.chat.completions.create({ ...base, max_tokens: 2, web_search_options: {}, foo: [1] });
    assert.ok(ok.choices.length === 1);
    await assert.rejects(
      // @ts-expect-error a wrong type on purpose
      client.chat.completions.create({ ...base, tools: { type: "function" } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "tools",
    );
  });
});
