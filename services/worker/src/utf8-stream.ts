/**
 * Turns sampled token ids into text, correctly across token boundaries.
 *
 * Byte-level BPE tokens are byte strings, not characters: one character is
 * often split over two or three tokens, and a random-weight model emits lone
 * bytes >= 0x80 that are not UTF-8 at all. Decoding per token would emit
 * broken text; instead every token's raw bytes go through one streaming
 * TextDecoder, which holds an incomplete character back until its last byte
 * arrives and turns truly invalid bytes into U+FFFD.
 */
export class TokenTextStream {
  readonly #tokenBytes: readonly Uint8Array[];
  // fatal: false is what makes invalid bytes U+FFFD instead of an exception.
  readonly #decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  /** @param tokenBytes raw bytes of every token id (special tokens as their text). */
  constructor(tokenBytes: readonly Uint8Array[]) {
    this.#tokenBytes = tokenBytes;
  }

  /** Text completed by this token; "" while a character is still incomplete. */
  push(token: number): string {
    const bytes = this.#tokenBytes[token];
    if (bytes === undefined || bytes.length === 0) return "";
    return this.#decoder.decode(bytes, { stream: true });
  }

  /** Same as {@link push} for raw bytes (tests, callers without a table). */
  pushBytes(bytes: Uint8Array): string {
    return this.#decoder.decode(bytes, { stream: true });
  }

  /** Ends the stream: bytes of an unfinished character become U+FFFD. */
  end(): string {
    return this.#decoder.decode();
  }
}
