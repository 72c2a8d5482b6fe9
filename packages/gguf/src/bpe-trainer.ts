/**
 * Deterministic byte-level BPE trainer (GPT-2 style): the corpus is split with the `llama-bpe`
 * pre-tokenizer, each pre-token is mapped to byte-level characters, and the most frequent
 * adjacent pair is merged repeatedly. Ties break on the pair's text (code-unit order), so the
 * same corpus and options always give the same vocabulary.
 */
import { BYTE_TO_UNICODE, preTokenize, textToByteLevel } from "./byte-level.ts";

export interface BpeTrainOptions {
  /** Number of normal tokens to reach: 256 byte tokens + merges (default 1024). Special tokens come on top. */
  vocabSize?: number;
  /** A pair must occur at least this often to be merged (default 2). Training stops earlier if none does. */
  minFrequency?: number;
}

export interface TrainedBpe {
  /** Byte-level token strings; ids 0..255 are the single bytes in byte order, then one per merge. */
  tokens: string[];
  /** Merges in rank order, each "left right" in byte-level text (GGUF `tokenizer.ggml.merges` format). */
  merges: string[];
}

interface Word {
  symbols: string[];
  count: number;
}

/** Trains a byte-level BPE on `corpus`. */
export function trainByteLevelBpe(corpus: string, options: BpeTrainOptions = {}): TrainedBpe {
  const vocabSize = options.vocabSize ?? 1024;
  const minFrequency = options.minFrequency ?? 2;
  if (vocabSize < 256) throw new Error(`vocabSize must be at least 256, got ${vocabSize}`);

  const counts = new Map<string, number>();
  for (const piece of preTokenize(corpus)) {
    const bl = textToByteLevel(piece);
    counts.set(bl, (counts.get(bl) ?? 0) + 1);
  }
  // Sorted so that iteration order (and thus everything downstream) is independent of Map history.
  const words: Word[] = [...counts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, count]) => ({ symbols: [...w], count }));

  const tokens = [...BYTE_TO_UNICODE];
  const known = new Set(tokens);
  const merges: string[] = [];

  // Pair counts are maintained incrementally: only words containing the merged pair change.
  const SEP = "\u0000"; // never occurs inside byte-level text
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addWordPairs = (wi: number, sign: 1 | -1): void => {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.symbols.length; i++) {
      const key = w.symbols[i]! + SEP + w.symbols[i + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * w.count);
      if (sign === 1) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addWordPairs(wi, 1);

  while (tokens.length < vocabSize) {
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && c > 0 && best !== undefined && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === undefined || bestCount < minFrequency) break;
    const [left, right] = best.split(SEP) as [string, string];
    const merged = left + right;
    merges.push(`${left} ${right}`);
    if (!known.has(merged)) {
      known.add(merged);
      tokens.push(merged);
    }
    const affected = [...(pairWords.get(best) ?? [])].sort((a, b) => a - b);
    for (const wi of affected) {
      const w = words[wi]!;
      addWordPairs(wi, -1);
      const next: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === left && w.symbols[i + 1] === right) {
          next.push(merged);
          i++;
        } else {
          next.push(w.symbols[i]!);
        }
      }
      w.symbols = next;
      addWordPairs(wi, 1);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
  }
  return { tokens, merges };
}
