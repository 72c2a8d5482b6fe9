import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from "node-llama-cpp";

/** Called once per llama.cpp decode with how many sequences and tokens it holds. */
export type DecodeBatchListener = (sequences: number, tokens: number) => void;

/**
 * node-llama-cpp's "maximumParallelism" batch prioritization, plus a report
 * of what each decode batch will hold.
 *
 * Why here: the prioritization strategy is the one public hook that sees the
 * queued work of every sequence right before each `decodeBatch()` (node-llama-cpp
 * keeps at most one queued item per sequence, so items = sequences). The
 * built-in strategy is not exported, so it is reproduced (3.21.1,
 * `maximumParallelismStrategy.js`): share the batch evenly, then give what is
 * left to clipped items in up to three passes, then by evaluation priority
 * (unlike the original, the passes also decrement the tokens left, so a long
 * prefill cannot take the share of the others). The count mirrors
 * node-llama-cpp's `fitQueuedDecodesToABatch`.
 */
export function observedMaximumParallelism(listener: DecodeBatchListener): CustomBatchingPrioritizationStrategy {
  return ({ items, size }) => {
    const result = maximumParallelism(items, size);
    let left = size;
    let sequences = 0;
    for (const { item, processAmount } of result) {
      const amount = Math.min(processAmount <= 0 ? 1 : processAmount, item.tokens.length, left);
      if (amount <= 0) {
        if (left === 0) break;
        continue;
      }
      left -= amount;
      sequences++;
    }
    try {
      listener(sequences, size - left);
    } catch {
      // A throwing strategy would fail every queued evaluation; metrics must never do that.
    }
    return result;
  };
}

function maximumParallelism(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  let leftFreeTokens = size;
  const minTokensForEachItem = Math.floor(leftFreeTokens / items.length);
  const res: PrioritizedBatchItem[] = [];
  const clippedItems: PrioritizedBatchItem[] = [];
  for (const item of items) {
    const processAmount = Math.min(item.tokens.length, leftFreeTokens, minTokensForEachItem);
    const prioritized = { item, processAmount };
    res.push(prioritized);
    leftFreeTokens -= processAmount;
    if (processAmount < item.tokens.length) clippedItems.push(prioritized);
    if (leftFreeTokens === 0) break;
  }
  for (let passesLeft = 3; leftFreeTokens > 0 && clippedItems.length > 0 && passesLeft > 0; passesLeft--) {
    const minIncreaseAmount = Math.ceil(leftFreeTokens / clippedItems.length);
    for (let i = 0; i < clippedItems.length && leftFreeTokens > 0; i++) {
      const prioritized = clippedItems[i]!;
      const unprocessed = prioritized.item.tokens.length - prioritized.processAmount;
      const increase = Math.min(unprocessed, leftFreeTokens, minIncreaseAmount);
      prioritized.processAmount += increase;
      leftFreeTokens -= increase;
      if (increase === unprocessed) {
        clippedItems.splice(i, 1);
        i--;
      }
    }
  }
  clippedItems.sort((a, b) => b.item.evaluationPriority - a.item.evaluationPriority);
  for (let i = 0; i < clippedItems.length && leftFreeTokens > 0; i++) {
    const prioritized = clippedItems[i]!;
    const unprocessed = prioritized.item.tokens.length - prioritized.processAmount;
    const increase = Math.min(unprocessed, leftFreeTokens);
    prioritized.processAmount += increase;
    leftFreeTokens -= increase;
    if (increase === unprocessed) {
      clippedItems.splice(i, 1);
      i--;
    }
  }
  return res;
}
