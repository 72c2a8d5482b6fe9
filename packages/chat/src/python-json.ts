/**
 * JSON the way Python's `json.dumps` writes it by default (`", "` between
 * items, `": "` after keys), keeping non-ASCII characters as they are (as
 * transformers' `tojson` does). Chat templates render tools with Python, so
 * this is the spacing SmolLM3 saw in training; JavaScript's compact
 * `JSON.stringify` would be a slightly different prompt.
 */
export function pythonJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => pythonJson(v)).join(", ")}]`;
  const parts: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined || typeof v === "function") continue;
    parts.push(`${JSON.stringify(key)}: ${pythonJson(v)}`);
  }
  return `{${parts.join(", ")}}`;
}
