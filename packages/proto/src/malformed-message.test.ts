/**
 * Bytes that are not a valid request message are the client's fault:
 * INVALID_ARGUMENT naming the message type, never INTERNAL, and the handler
 * never runs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, Metadata, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { WorkerService } from "./gen/smollm/internal/v1/worker_pb.ts";
import { serviceDefinition, serviceImplementation, startGrpcServer } from "./grpc-service.ts";

const identity = (b: Buffer): Buffer => b;

test("malformed request bytes get INVALID_ARGUMENT on unary and server-streaming methods", async () => {
  let handled = 0;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0 }, (s) => {
    s.addService(
      serviceDefinition(WorkerService),
      serviceImplementation(WorkerService, {
        getStatus: async () => {
          handled++;
          return { workerId: "w" };
        },
        generate: async function* () {
          handled++;
          yield { event: { case: "delta", value: { text: "x", tokens: 1 } } };
        },
      }),
    );
  });
  const client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  try {
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // varint too long
      Buffer.from([0x0a, 0x10, 0x41]), // length-delimited field longer than the message
      // Field 1 with invalid UTF-8: GenerateRequest.request_id is a string (proto3
      // requires valid UTF-8); GetStatusRequest has no field 1, so it is kept as
      // an unknown field and the message is valid.
      Buffer.from([0x0a, 0x02, 0xc3, 0x28]),
    ];
    for (const bytes of garbage) {
      const isUtf8Case = bytes.length === 4;
      const unary = await new Promise<ServiceError | null>((resolve) => {
        client.makeUnaryRequest("/smollm.internal.v1.WorkerService/GetStatus", identity, identity, bytes, new Metadata(), {}, (e) =>
          resolve(e),
        );
      });
      if (isUtf8Case) {
        assert.equal(unary, null);
      } else {
        assert.equal(unary?.code, status.INVALID_ARGUMENT, `unary ${bytes.toString("hex")}: ${unary?.details}`);
        assert.match(unary?.details ?? "", /malformed smollm\.internal\.v1\.GetStatusRequest message/);
      }

      const streamed = await new Promise<ServiceError | undefined>((resolve) => {
        const call = client.makeServerStreamRequest("/smollm.internal.v1.WorkerService/Generate", identity, identity, bytes, new Metadata(), {});
        call.on("data", () => {});
        call.on("error", (e: ServiceError) => resolve(e));
        call.on("end", () => resolve(undefined));
      });
      assert.equal(streamed?.code, status.INVALID_ARGUMENT, `stream ${bytes.toString("hex")}: ${streamed?.details}`);
      assert.match(streamed?.details ?? "", /malformed smollm\.internal\.v1\.GenerateRequest message/);
    }
    assert.equal(handled, 1, "no handler ran on a malformed message (the one call is the valid GetStatus)");
  } finally {
    client.close();
    await server.close(100);
  }
});
