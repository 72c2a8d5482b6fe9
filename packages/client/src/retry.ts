/** How the SDK retries a call that failed with UNAVAILABLE before its first token. */
export interface RetryOptions {
  /** Attempts in all, the first included; default 4. 1 disables retries. */
  maxAttempts?: number;
  /** Wait before the first retry, ms; doubled each time, with jitter; default 100. */
  initialBackoffMs?: number;
  /** Longest wait between attempts, ms; default 2000. */
  maxBackoffMs?: number;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2_000 };

/**
 * Wait before attempt `attempt + 1` (attempt counts from 1): exponential
 * with "equal jitter" (half fixed, half random) so that clients refused
 * together do not come back together; at least the server's `Retry-After`
 * hint when it gave one, capped by `maxBackoffMs`.
 */
export function backoffMs(attempt: number, retry: Required<RetryOptions>, serverHintMs?: number): number {
  const exp = Math.min(retry.maxBackoffMs, retry.initialBackoffMs * 2 ** (attempt - 1));
  const jittered = exp / 2 + Math.random() * (exp / 2);
  return Math.min(retry.maxBackoffMs, Math.max(jittered, serverHintMs ?? 0));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
