import { setTimeout as sleep } from "node:timers/promises";

/** Polls `check` until it returns true, or throws after `ms` with `what` in the message. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(50);
  }
}

/** Prometheus text expositions: `scrape(url)` and `metric(samples, name, labels)` (testkit's, shared with the soak). */
export { metricSum as metric, scrapeMetrics as scrape } from "@smollm/testkit";

/** Raw SSE events of a streaming response body (`data:` payloads, [DONE] included). */
export async function readSse(body: ReadableStream<Uint8Array>): Promise<string[]> {
  const events: string[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let at: number;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (event.startsWith("data: ")) events.push(event.slice(6));
    }
  }
  return events;
}
