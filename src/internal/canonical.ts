// One canonical form for JSON values, so two bodies that differ only in key order (or whitespace) compare equal:
// serve's Idempotency-Key check and the store's request fingerprints both use it.
import { createHash } from "node:crypto";

/**
 * RFC 8785 (JCS) text of a JSON value: object keys sorted by UTF-16 code units, no whitespace, numbers and strings
 * as JSON.stringify writes them (which JCS adopts). `undefined` members are left out, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(",")}}`;
}

/** A short stable digest (SHA-256, base64url) of the canonical JSON of `parts` as one array. */
export function fingerprint(...parts: unknown[]): string {
  return createHash("sha256").update(canonicalJson(parts)).digest("base64url");
}
