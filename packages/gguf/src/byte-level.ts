/**
 * GPT-2 byte-level helpers: the byte ↔ unicode mapping used by every `tokenizer.ggml.model =
 * "gpt2"` vocabulary (Llama-3 / SmolLM3 included), and llama.cpp's `llama-bpe` pre-tokenizer.
 */

/**
 * GPT-2 `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes map
 * to U+0100.. in byte order, so every byte has a visible, whitespace-free character.
 */
function buildByteTables(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const byteToChar: string[] = new Array<string>(256);
  const charToByte = new Map<string, number>();
  for (let i = 0; i < bs.length; i++) {
    const ch = String.fromCodePoint(cs[i]!);
    byteToChar[bs[i]!] = ch;
    charToByte.set(ch, bs[i]!);
  }
  return { byteToChar, charToByte };
}

const tables = buildByteTables();

/** Byte value → its GPT-2 unicode character (index 0..255). */
export const BYTE_TO_UNICODE: readonly string[] = tables.byteToChar;

/** Maps a byte-level character back to its byte, or undefined if it is not one of the 256. */
export function unicodeCharToByte(ch: string): number | undefined {
  return tables.charToByte.get(ch);
}

const utf8Encoder = new TextEncoder();

/** Encodes raw bytes as a byte-level string (one character per byte). */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += BYTE_TO_UNICODE[b]!;
  return s;
}

/** UTF-8 encodes `text` and maps each byte to its byte-level character. */
export function textToByteLevel(text: string): string {
  return bytesToByteLevel(utf8Encoder.encode(text));
}

/**
 * Reverses the byte-level mapping. Returns undefined when `s` contains a character outside the
 * 256 byte characters (e.g. a special token's text such as `<|im_end|>` has none, but an added
 * token with arbitrary Unicode would).
 */
export function byteLevelToBytes(s: string): Uint8Array | undefined {
  const out: number[] = [];
  for (const ch of s) {
    const b = tables.charToByte.get(ch);
    if (b === undefined) return undefined;
    out.push(b);
  }
  return Uint8Array.from(out);
}

/**
 * llama.cpp's `LLAMA_VOCAB_PRE_TYPE_LLAMA3` regex (pre-tokenizer `llama-bpe`), i.e. Llama-3's
 * tokenizer.json split with the case-insensitive contractions spelled out as llama.cpp does.
 */
export const LLAMA3_PRETOKENIZE_REGEX =
  /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Splits text into pre-tokens ("words") the way llama.cpp's `llama-bpe` pre-tokenizer does. */
export function preTokenize(text: string): string[] {
  return text.match(new RegExp(LLAMA3_PRETOKENIZE_REGEX)) ?? [];
}
