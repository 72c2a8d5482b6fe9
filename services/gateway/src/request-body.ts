import type { IncomingMessage } from "node:http";
import { CancelledError } from "@smollm/common";
import { ApiError } from "./api-error.ts";

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

function tooLarge(limit: number): ApiError {
  return new ApiError("invalid_argument", `Request body too large: the limit is ${limit} bytes.`, {
    status: 413,
    apiCode: "request_too_large",
  });
}

/**
 * Reads and parses a JSON request body of at most `limit` bytes. A declared
 * `content-length` over the limit fails before reading anything.
 *
 * @throws ApiError 413 when too large, ApiError 400 for invalid JSON, CancelledError when the client goes away.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  // Events rather than `for await`: leaving that loop early destroys the
  // request, and with it the socket, before the 413 can be sent. Over the
  // limit, collecting stops and the stream is left flowing (the rest is
  // dropped) for the caller's lingering close.
  await new Promise<void>((resolve, reject) => {
    const done = (error?: unknown): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) done(tooLarge(limit));
      else chunks.push(chunk);
    };
    const onEnd = (): void => done();
    const onError = (error: unknown): void => done(new CancelledError("client went away while sending the request", { cause: error }));
    const onClose = (): void => {
      if (!req.complete) done(new CancelledError("client went away while sending the request"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
  const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
  let text: string;
  try {
    // JSON must be UTF-8 (RFC 8259). A lenient decode would turn bad bytes into
    // U+FFFD and generate from a prompt the client never sent: refuse instead.
    text = STRICT_UTF8.decode(bytes);
  } catch (error: unknown) {
    throw new ApiError("invalid_argument", "The request body is not valid UTF-8.", { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error: unknown) {
    throw new ApiError(
      "invalid_argument",
      "We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.",
      { cause: error },
    );
  }
}
