import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidRequestError, ClusterError } from "@smollm/common";
import { WorkerService } from "./gen/smollm/internal/v1/worker_pb.ts";
import { createClient } from "./grpc-client.ts";
import { serviceDefinition, serviceImplementation, startGrpcServer } from "./grpc-service.ts";

test("typed gRPC adapter: unary, streaming, errors, cancellation", async () => {
  let cancelledOnServer = false;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        getStatus: async () => ({ workerId: "w1", slots: 4 }),
        generate: async function* (request, context) {
          if (request.maxTokens === 0) throw new InvalidRequestError("max_tokens must be positive", { param: "max_tokens" });
          yield { event: { case: "started", value: { workerId: "w1", promptTokens: request.promptTokens.length } } };
          for (let i = 0; i < request.maxTokens; i++) {
            if (context.signal.aborted) {
              cancelledOnServer = true;
              return;
            }
            yield { event: { case: "delta", value: { text: `t${i}`, tokens: 1 } } };
            await sleep(5);
          }
        },
      }),
    );
  });
  const client = createClient(WorkerService, `127.0.0.1:${server.port}`);
  try {
    const status = await client.getStatus({});
    assert.equal(status.workerId, "w1");
    assert.equal(status.slots, 4);

    const texts: string[] = [];
    for await (const event of client.generate({ promptTokens: [1, 2, 3], maxTokens: 3 })) {
      if (event.event.case === "started") assert.equal(event.event.value.promptTokens, 3);
      if (event.event.case === "delta") texts.push(event.event.value.text);
    }
    assert.deepEqual(texts, ["t0", "t1", "t2"]);

    await assert.rejects(
      async () => {
        for await (const _ of client.generate({ maxTokens: 0 })) void _;
      },
      (error: unknown) =>
        error instanceof ClusterError && error.code === "invalid_argument" && error.param === "max_tokens" &&
        error.message === "max_tokens must be positive",
    );

    const controller = new AbortController();
    let seen = 0;
    await assert.rejects(async () => {
      for await (const event of client.generate({ maxTokens: 1000 }, { signal: controller.signal })) {
        if (event.event.case === "delta" && ++seen === 3) controller.abort();
      }
    }, (error: unknown) => error instanceof ClusterError && error.code === "cancelled");
    await sleep(50);
    assert.equal(cancelledOnServer, true);

    await assert.rejects(
      client.getStatus({}, { deadline: Date.now() - 1 }),
      (error: unknown) => error instanceof ClusterError && error.code === "deadline_exceeded",
    );
  } finally {
    client.close();
    await server.close();
  }
});

test("grpc.health.v1: Check follows readiness, unknown services are NOT_FOUND", async () => {
  const { addHealthService } = await import("./health.ts");
  const { Health, HealthCheckResponse_ServingStatus: S } = await import("./gen/grpc/health/v1/health_pb.ts");
  let ready = true;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    addHealthService(s, ["smollm.internal.v1.WorkerService"], () => ready);
  });
  const client = createClient(Health, `127.0.0.1:${server.port}`);
  try {
    assert.equal((await client.check({ service: "" })).status, S.SERVING);
    assert.equal((await client.check({ service: "smollm.internal.v1.WorkerService" })).status, S.SERVING);
    ready = false;
    assert.equal((await client.check({ service: "" })).status, S.NOT_SERVING);
    await assert.rejects(client.check({ service: "nope" }), (e: unknown) => e instanceof ClusterError && e.code === "not_found");
    const watch = client.watch({ service: "" })[Symbol.asyncIterator]();
    assert.equal((await watch.next()).value?.status, S.NOT_SERVING);
    ready = true;
    assert.equal((await watch.next()).value?.status, S.SERVING);
    await watch.return?.();
  } finally {
    client.close();
    await server.close();
  }
});
