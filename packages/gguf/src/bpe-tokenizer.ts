/**
 * Pure-TypeScript byte-level BPE tokenizer that mirrors llama.cpp's `gpt2`/`llama-bpe`
 * tokenizer, so tests can cross-check llama.cpp's ids, and workers can get each token's raw
 * bytes to stream UTF-8 correctly.
 */
import { byteLevelToBytes, preTokenize, textToByteLevel } from "./byte-level.ts";

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_attr` legacy types). */
export const TokenType = {
  Undefined: 0,
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

export interface ByteLevelBpeVocab {
  /** Token texts by id: byte-level strings for normal tokens, literal text for special ones. */
  tokens: readonly string[];
  /** Merges in rank order, "left right". */
  merges: readonly string[];
  /** Token types by id (default: all Normal). Control and UserDefined tokens are matched as specials. */
  tokenTypes?: ArrayLike<number>;
  /**
   * llama.cpp's `ignore_merges` (true for `llama-bpe`): a pre-token that is itself a vocabulary
   * entry becomes that token directly, without running merges. Default true.
   */
  ignoreMerges?: boolean;
}

export interface EncodeOptions {
  /**
   * When true (default false, like llama.cpp's `parse_special`), the text of Control and
   * UserDefined tokens is recognised and emitted as the single special id. When false, only
   * UserDefined tokens are matched (llama.cpp always matches those), Control text is tokenized
   * as plain text.
   */
  specialTokens?: boolean;
}

const utf8 = new TextEncoder();

interface SpecialEntry {
  text: string;
  id: number;
  type: number;
}

/** Byte-level BPE tokenizer compatible with llama.cpp's `llama-bpe` pre-tokenizer. */
export class ByteLevelBpe {
  readonly tokens: readonly string[];
  readonly tokenTypes: Uint8Array;
  readonly ignoreMerges: boolean;
  private readonly idByText = new Map<string, number>();
  private readonly mergeRank = new Map<string, number>();
  private readonly bytesCache: (Uint8Array | undefined)[];
  /** Special tokens (Control/UserDefined), longest first so that matching is greedy. */
  private readonly specials: SpecialEntry[];
  /** Specials indexed by first UTF-16 unit (longest first within each list) for fast matching. */
  private readonly specialsByFirstChar = { all: new Map<string, SpecialEntry[]>(), userDefined: new Map<string, SpecialEntry[]>() };

  constructor(vocab: ByteLevelBpeVocab) {
    this.tokens = vocab.tokens;
    this.ignoreMerges = vocab.ignoreMerges ?? true;
    this.tokenTypes = new Uint8Array(vocab.tokens.length).fill(TokenType.Normal);
    if (vocab.tokenTypes) {
      for (let i = 0; i < vocab.tokens.length; i++) this.tokenTypes[i] = vocab.tokenTypes[i] ?? TokenType.Normal;
    }
    const specials: SpecialEntry[] = [];
    for (let id = 0; id < vocab.tokens.length; id++) {
      const text = vocab.tokens[id]!;
      const type = this.tokenTypes[id]!;
      if (type === TokenType.Control || type === TokenType.UserDefined) {
        if (text.length > 0) specials.push({ text, id, type });
      } else if (!this.idByText.has(text)) {
        this.idByText.set(text, id);
      }
    }
    this.specials = specials.sort((a, b) => b.text.length - a.text.length || a.id - b.id);
    for (const sp of this.specials) {
      const first = sp.text[0]!;
      const add = (m: Map<string, SpecialEntry[]>): void => {
        const list = m.get(first);
        if (list) list.push(sp);
        else m.set(first, [sp]);
      };
      add(this.specialsByFirstChar.all);
      if (sp.type === TokenType.UserDefined) add(this.specialsByFirstChar.userDefined);
    }
    vocab.merges.forEach((m, rank) => {
      const key = m.replace(" ", "\u0000"); // only the first space separates left from right
      if (!this.mergeRank.has(key)) this.mergeRank.set(key, rank);
    });
    this.bytesCache = new Array<Uint8Array | undefined>(vocab.tokens.length);
  }

  /** Number of tokens in the vocabulary. */
  get size(): number {
    return this.tokens.length;
  }

  /** Id of a token by its vocabulary text (byte-level text for normal tokens), or undefined. */
  tokenId(text: string): number | undefined {
    return this.idByText.get(text) ?? this.specials.find((s) => s.text === text)?.id;
  }

  /** Encodes text to token ids (no BOS is added). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const parseSpecial = options.specialTokens ?? false;
    const out: number[] = [];
    const byFirst = parseSpecial ? this.specialsByFirstChar.all : this.specialsByFirstChar.userDefined;
    let start = 0;
    let i = 0;
    // llama.cpp partitions the text on special token texts first, then tokenizes each fragment.
    while (i < text.length) {
      const candidates = byFirst.get(text[i]!);
      const hit = candidates?.find((s) => text.startsWith(s.text, i));
      if (hit) {
        if (i > start) this.encodeFragment(text.slice(start, i), out);
        out.push(hit.id);
        i += hit.text.length;
        start = i;
      } else {
        i++;
      }
    }
    if (start < text.length) this.encodeFragment(text.slice(start), out);
    return out;
  }

  private encodeFragment(fragment: string, out: number[]): void {
    for (const word of preTokenize(fragment)) {
      const bl = textToByteLevel(word);
      const direct = this.ignoreMerges ? this.idByText.get(bl) : undefined;
      if (direct !== undefined) {
        out.push(direct);
        continue;
      }
      for (const sym of this.applyMerges([...bl])) {
        const id = this.idByText.get(sym);
        if (id !== undefined) {
          out.push(id);
        } else {
          // llama.cpp falls back to one token per byte-level character (i.e. per byte).
          for (const ch of sym) {
            const bid = this.idByText.get(ch);
            if (bid === undefined) throw new Error(`byte token ${JSON.stringify(ch)} missing from vocabulary`);
            out.push(bid);
          }
        }
      }
    }
  }

  /** Repeatedly merges the lowest-ranked adjacent pair (leftmost on ties), as llama.cpp does. */
  private applyMerges(symbols: string[]): string[] {
    for (;;) {
      let bestRank = Number.POSITIVE_INFINITY;
      let bestAt = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.mergeRank.get(symbols[i]! + "\u0000" + symbols[i + 1]!);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestAt = i;
        }
      }
      if (bestAt < 0) return symbols;
      symbols.splice(bestAt, 2, symbols[bestAt]! + symbols[bestAt + 1]!);
    }
  }

  /**
   * Raw bytes of one token: the byte-level mapping reversed for normal tokens, the UTF-8 of the
   * text for special/control tokens (and for any token whose text is not byte-level).
   */
  tokenBytes(id: number): Uint8Array {
    const cached = this.bytesCache[id];
    if (cached) return cached;
    const text = this.tokens[id];
    if (text === undefined) throw new RangeError(`token id ${id} out of range 0..${this.tokens.length - 1}`);
    const type = this.tokenTypes[id]!;
    const bytes =
      type === TokenType.Control || type === TokenType.UserDefined
        ? utf8.encode(text)
        : (byteLevelToBytes(text) ?? utf8.encode(text));
    this.bytesCache[id] = bytes;
    return bytes;
  }

  /** Concatenated raw bytes of `ids` (decode with a TextDecoder; may be invalid UTF-8 for random output). */
  decode(ids: readonly number[]): Uint8Array {
    const parts = ids.map((id) => this.tokenBytes(id));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Convenience: `decode` then UTF-8 decode (invalid sequences become U+FFFD). */
  decodeText(ids: readonly number[]): string {
    return new TextDecoder().decode(this.decode(ids));
  }
}
