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
  try {
    for await (const chunk of req) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > limit) throw tooLarge(limit);
      chunks.push(buffer);
    }
  } catch (error: unknown) {
    if (error instanceof ApiError) throw error;
    throw new CancelledError("client went away while sending the request", { cause: error });
  }
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
