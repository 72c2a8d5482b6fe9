/**
 * TLS on the gateway's public endpoints (HTTPS and gRPC) and mutual TLS
 * between gateway, scheduler and workers, with certificates made by openssl
 * for this run: the whole path works, and peers without a certificate from
 * the cluster's CA are refused.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { credentials } from "@grpc/grpc-js";
import { SmolLMClient, UnavailableError } from "@smollm/client";
import { SchedulerService, WorkerService, channelCredentials, createClient } from "@smollm/proto";
import { startLocalCluster, type LocalCluster } from "@smollm/testkit";
import { makePki, type Pki } from "./pki.ts";

const MODEL = "SmolLM3-3B";

function httpsPost(port: number, ca: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, path: "/v1/chat/completions", method: "POST", ca: readFileSync(ca), headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("TLS for the public endpoints, mutual TLS inside the cluster", () => {
  let pki: Pki;
  let cluster: LocalCluster;

  before(async () => {
    pki = makePki();
    const mtls = ["--mtls-ca", pki.ca, "--mtls-cert", pki.cert, "--mtls-key", pki.key];
    cluster = await startLocalCluster({
      workers: 1,
      privateRedis: true,
      workerArgs: () => ["--slots", "4", "--context-size", "1024", ...mtls],
      schedulerArgs: mtls,
      gatewayArgs: [...mtls, "--tls-cert", pki.cert, "--tls-key", pki.key],
    });
  });
  after(async () => {
    await cluster?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  test("HTTPS: a chat completion through gateway → scheduler → worker, all over (mutual) TLS; plain HTTP is refused", async () => {
    const port = Number(cluster.gateway.ready["http_port"]);
    assert.equal(cluster.gateway.ready["tls"], true);
    assert.equal(cluster.gateway.ready["mtls"], true);
    const res = await httpsPost(port, pki.ca, { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    assert.equal(res.status, 200, res.text);
    assert.equal((JSON.parse(res.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 4);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });

  test("gRPC: the SDK streams over TLS with the cluster's CA; a plaintext client cannot connect", async () => {
    const tls = new SmolLMClient({ address: cluster.gatewayGrpcAddress, tls: { ca: readFileSync(pki.ca) } });
    const plain = new SmolLMClient({ address: cluster.gatewayGrpcAddress, retry: false, timeoutMs: 5_000 });
    try {
      const done = await tls.streamChatCompletion({ model: MODEL, messages: [{ role: "user", content: "hi" }], maxTokens: 4 }).collect();
      assert.equal(done.usage?.completionTokens, 4);
      await assert.rejects(plain.listModels(), UnavailableError);
    } finally {
      tls.close();
      plain.close();
    }
  });

  test("the worker and the scheduler refuse peers without a certificate from the cluster's CA", async () => {
    const workerAddress = `127.0.0.1:${String(cluster.workers[0]?.ready["grpc_port"])}`;
    const schedulerAddress = `127.0.0.1:${String(cluster.scheduler.ready["grpc_port"])}`;
    const options = { deadline: Date.now() + 5_000 };
    const good = channelCredentials({ caFile: pki.ca, certFile: pki.cert, keyFile: pki.key });
    const refused = [
      ["plaintext", credentials.createInsecure()],
      ["TLS without a client certificate", credentials.createSsl(readFileSync(pki.ca))],
      ["a certificate from another CA", channelCredentials({ caFile: pki.ca, certFile: pki.rogueCert, keyFile: pki.rogueKey })],
    ] as const;
    for (const [what, creds] of refused) {
      const worker = createClient(WorkerService, workerAddress, { credentials: creds });
      await assert.rejects(worker.getStatus({}, options), (e: unknown) => (e as { code?: string }).code === "unavailable", `worker: ${what}`);
      worker.close();
      const scheduler = createClient(SchedulerService, schedulerAddress, { credentials: creds });
      await assert.rejects(scheduler.route({ requestId: "x", prompt: "hi" }, options), (e: unknown) => (e as { code?: string }).code === "unavailable", `scheduler: ${what}`);
      scheduler.close();
    }
    const worker = createClient(WorkerService, workerAddress, { credentials: good });
    try {
      const status = await worker.getStatus({}, options);
      assert.equal(status.workerId, "worker-0");
    } finally {
      worker.close();
    }
  });
});
