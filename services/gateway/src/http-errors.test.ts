import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CancelledError,
  ClusterError,
  ContextLengthError,
  DeadlineExceededError,
  InvalidRequestError,
  OverloadedError,
  UnavailableError,
  type ErrorCode,
} from "@smollm/common";
import { RequestParamError } from "@smollm/chat";
import { ApiError, modelNotFound } from "./api-error.ts";
import { errorBody, toHttpError } from "./http-errors.ts";

const statuses: [ErrorCode, number, string, string | null][] = [
  ["invalid_argument", 400, "invalid_request_error", null],
  ["context_length_exceeded", 400, "invalid_request_error", "context_length_exceeded"],
  ["failed_precondition", 400, "invalid_request_error", null],
  ["unauthenticated", 401, "invalid_request_error", "invalid_api_key"],
  ["permission_denied", 403, "invalid_request_error", null],
  ["not_found", 404, "invalid_request_error", null],
  ["resource_exhausted", 429, "requests", "resource_exhausted"],
  ["cancelled", 499, "invalid_request_error", "cancelled"],
  ["internal", 500, "server_error", null],
  ["unavailable", 503, "server_error", "unavailable"],
  ["deadline_exceeded", 504, "server_error", "deadline_exceeded"],
];

for (const [code, status, type, apiCode] of statuses) {
  test(`${code} → ${status}`, () => {
    const mapped = toHttpError(new ClusterError(code, "msg"));
    assert.equal(mapped.status, status);
    assert.equal(mapped.object.type, type);
    assert.equal(mapped.object.code, apiCode);
    assert.equal(mapped.error.code, code);
  });
}

test("subclasses map by code; param and OpenAI code carried", () => {
  assert.equal(toHttpError(new ContextLengthError("too long")).status, 400);
  assert.equal(toHttpError(new OverloadedError("busy")).status, 429);
  assert.equal(toHttpError(new UnavailableError("down")).status, 503);
  assert.equal(toHttpError(new CancelledError()).status, 499);
  assert.equal(toHttpError(new DeadlineExceededError()).status, 504);
  const param = toHttpError(new RequestParamError("Invalid type for 'x'", "x", "invalid_type"));
  assert.deepEqual(param.object, { message: "Invalid type for 'x'", type: "invalid_request_error", param: "x", code: "invalid_type" });
  assert.equal(toHttpError(new InvalidRequestError("bad", { param: "messages" })).object.param, "messages");
});

test("model not found is OpenAI's 404 model_not_found", () => {
  const mapped = toHttpError(modelNotFound("gpt-4"));
  assert.equal(mapped.status, 404);
  assert.equal(
    errorBody(mapped.object),
    '{"error":{"message":"The model `gpt-4` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}',
  );
});

test("explicit HTTP status (413)", () => {
  const mapped = toHttpError(new ApiError("invalid_argument", "too big", { status: 413, apiCode: "request_too_large" }));
  assert.equal(mapped.status, 413);
  assert.equal(mapped.object.code, "request_too_large");
});

test("Retry-After: always on 429, on 503 when the error says when", () => {
  assert.equal(toHttpError(new OverloadedError("busy")).retryAfterS, 1);
  assert.equal(toHttpError(new OverloadedError("busy", { retryAfterMs: 2500 })).retryAfterS, 3);
  assert.equal(toHttpError(new UnavailableError("down", { retryAfterMs: 10 })).retryAfterS, 1);
  assert.equal(toHttpError(new UnavailableError("down")).retryAfterS, undefined);
  assert.equal(toHttpError(new InvalidRequestError("x", { retryAfterMs: 1000 })).retryAfterS, undefined);
});

test("causes and internal messages are never sent", () => {
  const secret = new Error("ECONNREFUSED 10.0.0.7:50051 /secret/path");
  const mapped = toHttpError(new UnavailableError("no worker available", { cause: secret }));
  assert.ok(!errorBody(mapped.object).includes("secret"));
  const internal = toHttpError(new ClusterError("internal", "worker 3 segfaulted in llama_decode"));
  assert.ok(!errorBody(internal.object).includes("segfault"));
  const unknown = toHttpError(new TypeError("cannot read x of undefined"));
  assert.equal(unknown.status, 500);
  assert.ok(!errorBody(unknown.object).includes("undefined"));
  assert.equal(unknown.error.cause instanceof TypeError, true);
});
