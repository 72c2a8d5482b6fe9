/**
 * Chained hashes of fixed-size token blocks, the identity of cached KV
 * (as in vLLM's prefix caching, llm-d and Dynamo): block i's hash covers its
 * own tokens and, through the previous hash, every token before it, so equal
 * hashes mean equal prefixes. Only full blocks are hashed.
 *
 * The hash is 64 bits from two 32-bit murmur-style lanes (fast in JS, no
 * BigInt), written as 16 hex characters.
 */

/** Default tokens per block. */
export const DEFAULT_BLOCK_SIZE = 16;

const SEED_A = 0x9e3779b1;
const SEED_B = 0x85ebca77;

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finalize(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const hex = (n: number): string => n.toString(16).padStart(8, "0");

/**
 * Hashes of the full blocks of `tokens`. `limit` caps how many blocks are
 * hashed (routing needs no more than the longest cached prefix).
 */
export function blockHashes(tokens: ArrayLike<number>, blockSize = DEFAULT_BLOCK_SIZE, limit = Infinity): string[] {
  const blocks = Math.min(Math.floor(tokens.length / blockSize), limit);
  const out = new Array<string>(blocks);
  let prevA = SEED_A;
  let prevB = SEED_B;
  for (let b = 0; b < blocks; b++) {
    let a = prevA ^ SEED_B;
    let c = prevB ^ SEED_A;
    const start = b * blockSize;
    for (let i = start; i < start + blockSize; i++) {
      const t = tokens[i] ?? 0;
      a = mix(a, t);
      c = mix(c, t ^ 0x5bd1e995);
    }
    a = finalize(a, blockSize);
    c = finalize(c ^ a, blockSize);
    prevA = a;
    prevB = c;
    out[b] = hex(a) + hex(c);
  }
  return out;
}
