/**
 * The fault, bad-input and soak tests measure what clients saw and record
 * one row per case. `npm run bench:reliability` runs them with
 * SMOLLM_RELIABILITY_OUT set and prints the rows as the reliability table;
 * a plain `npm test` records nothing.
 */
import { appendFileSync } from "node:fs";
import type { ChatResult } from "@smollm/testkit";

/** One row of the reliability table. */
export interface CaseRow {
  /** The test file's area: `worker faults`, `infrastructure faults`, `network faults`, `bad input`, `load`. */
  suite: string;
  case: string;
  /** Requests (or streams, or messages) sent during the case. */
  sent: number;
  succeeded: number;
  /** What the failures were, as the client saw them ("SSE error unavailable, partial text kept" → 2). */
  failed: Record<string, number>;
  /** No conclusive outcome: a hang past the client's deadline, or a stream that ended without [DONE] or an error event. */
  lost: number;
  /** Time until the cluster served normally again by itself, when the case measures one. */
  recoveryMs?: number | undefined;
  /** What the case expects clients to see, in a few words. */
  expected: string;
  notes?: string | undefined;
}

/** Appends a row to the file named by SMOLLM_RELIABILITY_OUT, if set. */
export function recordCase(row: CaseRow): void {
  const out = process.env["SMOLLM_RELIABILITY_OUT"];
  if (out === undefined || out === "") return;
  appendFileSync(out, `${JSON.stringify({ ...row, at: new Date().toISOString() })}\n`);
}

/** How a failed result is named in the table. */
export function failureLabel(r: ChatResult): string {
  const partial = r.text.length > 0 ? ", partial text kept" : "";
  switch (r.outcome) {
    case "http_error":
      return `HTTP ${r.status} ${r.errorCode ?? ""}`.trim();
    case "stream_error":
      return `SSE error ${r.errorCode ?? "?"}${partial}`;
    case "closed":
      return r.errorCode === "TRUNCATED" ? "stream ended without [DONE] or error (silent truncation)" : `connection closed (${r.errorCode ?? "?"})${partial}`;
    case "timeout":
      return "no answer within the client's deadline (hang)";
    default:
      return r.outcome;
  }
}

/** Counts a batch of results into the table's sent / succeeded / failed / lost columns. */
export function tally(results: readonly ChatResult[]): Pick<CaseRow, "sent" | "succeeded" | "failed" | "lost"> {
  const failed: Record<string, number> = {};
  let succeeded = 0;
  let lost = 0;
  for (const r of results) {
    if (r.outcome === "ok") {
      succeeded++;
      continue;
    }
    if (r.outcome === "timeout" || (r.outcome === "closed" && r.errorCode === "TRUNCATED")) lost++;
    const label = failureLabel(r);
    failed[label] = (failed[label] ?? 0) + 1;
  }
  return { sent: results.length, succeeded, failed, lost };
}

/** Adds failure counts of another shape ("gRPC UNAVAILABLE …") to a tally. */
export function addFailure(failed: Record<string, number>, label: string, n = 1): void {
  failed[label] = (failed[label] ?? 0) + n;
}
