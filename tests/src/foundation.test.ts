/**
 * The first vertical slice end to end, with real processes: a private
 * redis-server, the scheduler, two workers running node-llama-cpp on the
 * generated tiny smollm3 model, and the gateway, driven by the official
 * `openai` client over HTTP.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { metric, readSse, scrape, until } from "./helpers.ts";

let cluster: LocalCluster;
let client: OpenAI;
const opsUrl = (i: number): string => `http://127.0.0.1:${String(cluster.workers[i]?.ready["ops_port"])}/metrics`;

before(async () => {
  cluster = await startLocalCluster({
    workers: 2,
    privateRedis: true,
    workerArgs: () => ["--slots", "16", "--context-size", "1024", "--threads", "1"],
  });
  client = new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => {
  await cluster?.stop();
});

describe("foundation: gateway → scheduler → workers", () => {
  test("the openai client streams a chat completion, with usage and the worker named", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: "SmolLM3-3B",
        messages: [{ role: "user", content: "Bonjour, comment ça va ?" }],
        max_tokens: 24,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    assert.match(response.headers.get("x-smollm-worker-id") ?? "", /^worker-\d$/);
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let first = true;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      if (first) {
        assert.equal(chunk.choices[0]?.delta.role, "assistant");
        first = false;
      }
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(finish === "stop" || finish === "length", `finish_reason ${finish}`);
    assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 24);
    assert.ok(usage.prompt_tokens > 5);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(typeof usage.prompt_tokens_details?.cached_tokens, "number");
    assert.ok(text.length > 0 || usage.completion_tokens > 0);
  });

  test("non-streaming completion and /v1/models", async () => {
    const completion = await client.chat.completions.create({
      model: "SmolLM3-3B",
      messages: [{ role: "system", content: "/no_think" }, { role: "user", content: "Hola" }],
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.choices[0]?.message.role, "assistant");
    assert.ok((completion.usage?.completion_tokens ?? 0) > 0);
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === "SmolLM3-3B"));
  });

  test("SSE framing is OpenAI's and every chunk is whole UTF-8", async () => {
    const res = await fetch(`${cluster.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "SmolLM3-3B",
        messages: [{ role: "user", content: "Größe, façon, niño, perché, não" }],
        max_tokens: 64,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = await readSse(res.body!); // a fatal TextDecoder: broken UTF-8 throws
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: unknown[]; usage?: unknown });
    assert.deepEqual(chunks.at(-1)?.choices, []);
    assert.ok(chunks.at(-1)?.usage);
  });

  test("16 concurrent streams all finish, and decode batches held several sequences", async () => {
    const before0 = await scrape(opsUrl(0));
    const before1 = await scrape(opsUrl(1));
    const runs = Array.from({ length: 16 }, async (_, i) => {
      const stream = await client.chat.completions.create({
        model: "SmolLM3-3B",
        messages: [{ role: "user", content: `Stream ${i}: raconte une histoire.` }],
        max_tokens: 48,
        stream: true,
        stream_options: { include_usage: true },
        // @ts-expect-error extension (vLLM's): keep generating past end-of-generation tokens
        ignore_eos: true,
      });
      let tokens = 0;
      for await (const chunk of stream) if (chunk.usage) tokens = chunk.usage.completion_tokens;
      return tokens;
    });
    const counts = await Promise.all(runs);
    assert.deepEqual(counts, new Array(16).fill(48));
    // Batches that held more than one sequence: the histogram's count minus its le="1" bucket.
    let multi = 0;
    for (const [i, before] of [before0, before1].entries()) {
      const now = await scrape(opsUrl(i));
      const count = (m: Map<string, number>) => metric(m, "smollm_worker_decode_batch_sequences_count");
      const single = (m: Map<string, number>) => metric(m, "smollm_worker_decode_batch_sequences_bucket", { le: "1" });
      multi += count(now) - count(before) - (single(now) - single(before));
    }
    assert.ok(multi > 0, `no decode batch held more than one sequence (${multi})`);
  });

  test("a second turn of a conversation reports cached prompt tokens", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "system", content: "/no_think Tu es un assistant serviable. Réponds en français, brièvement et poliment." },
      { role: "user", content: "Quelle est la capitale de la France ?" },
    ];
    const first = await client.chat.completions.create({ model: "SmolLM3-3B", messages, max_tokens: 12, temperature: 0 });
    messages.push({ role: "assistant", content: first.choices[0]?.message.content ?? "" });
    messages.push({ role: "user", content: "Et celle de l'Italie ?" });
    const { data: second, response } = await client.chat.completions
      .create({ model: "SmolLM3-3B", messages, max_tokens: 12, temperature: 0 })
      .withResponse();
    const cached = second.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(cached > 20, `cached_tokens ${cached}`);
    assert.ok(cached < (second.usage?.prompt_tokens ?? 0));
    assert.equal(response.headers.get("x-smollm-cached-tokens"), String(cached));
  });

  test("a client that goes away cancels its generation and frees its slot", async () => {
    const cancelled = async (): Promise<number> =>
      metric(await scrape(opsUrl(0)), "smollm_worker_requests_total", { finish_reason: "cancelled" }) +
      metric(await scrape(opsUrl(1)), "smollm_worker_requests_total", { finish_reason: "cancelled" });
    const before = await cancelled();
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      {
        model: "SmolLM3-3B",
        messages: [{ role: "user", content: "Erzähl mir eine sehr lange Geschichte." }],
        max_tokens: 350,
        stream: true,
        stream_options: { include_usage: true },
        // @ts-expect-error extension
        ignore_eos: true,
      },
      { signal: controller.signal },
    );
    let sawUsage = false;
    try {
      for await (const chunk of stream) {
        if (chunk.usage) sawUsage = true;
        controller.abort(); // leave at the first chunk, long before 350 tokens
        break;
      }
    } catch {
      // The SDK may surface the abort as an error; either way the client is gone.
    }
    assert.equal(sawUsage, false, "the stream finished before the client left; the test proves nothing");
    await until("the worker to count the cancellation", async () => (await cancelled()) === before + 1, 5_000);
    const active = async (): Promise<number> =>
      metric(await scrape(opsUrl(0)), "smollm_worker_active_slots") + metric(await scrape(opsUrl(1)), "smollm_worker_active_slots");
    await until("slots freed after the client left", async () => (await active()) === 0, 5_000);
  });

  test("bad requests get 400s with OpenAI error bodies, and serving goes on", async () => {
    const post = (body: string) =>
      fetch(`${cluster.gatewayUrl}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const cases: [string, number, RegExp][] = [
      ["{not json", 400, /json/i],
      [JSON.stringify({ model: "SmolLM3-3B", messages: [] }), 400, /messages/],
      [JSON.stringify({ model: "SmolLM3-3B", messages: "hi" }), 400, /messages/],
      [JSON.stringify({ model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }], max_tokens: "many" }), 400, /max_tokens/],
      [JSON.stringify({ model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }], temperature: 9 }), 400, /temperature/],
      [JSON.stringify({ model: "SmolLM3-3B", messages: [{ role: "user", content: "x" }], max_tokens: 100_000 }), 400, /context length/],
      [JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }), 404, /model/],
    ];
    for (const [body, status, pattern] of cases) {
      const res = await post(body);
      assert.equal(res.status, status, body);
      const json = (await res.json()) as { error?: { message?: string; type?: string } };
      assert.equal(typeof json.error?.type, "string", body);
      assert.match(json.error?.message ?? "", pattern, body);
    }
    const ok = await client.chat.completions.create({ model: "SmolLM3-3B", messages: [{ role: "user", content: "ok?" }], max_tokens: 4 });
    assert.ok(ok.choices.length === 1);
  });
});
