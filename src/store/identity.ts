// A request's identity, stable across processes and reruns: an explicit idempotency key, or the fingerprint of its
// endpoint and canonical body plus its occurrence number among this client's calls with that fingerprint (so k
// identical calls are k distinct lines, and the n-th of a rerun replays the n-th of the first run).
import { createHash } from "node:crypto";

/** JSON with object keys sorted at every level: the same request written in another key order has one fingerprint. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const keys = Object.keys(value as object).sort();
  let out = "{";
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined || typeof v === "function") continue;
    out += `${out.length > 1 ? "," : ""}${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** 128 bits of SHA-256 over the endpoint and the canonical body, base64url. */
export function fingerprint(endpoint: string, params: unknown): string {
  return createHash("sha256")
    .update(endpoint)
    .update("\n")
    .update(canonicalJson(params))
    .digest("base64url")
    .slice(0, 22);
}

export const keyIdentity = (key: string) => `k:${key}`;

/** Counts occurrences of each fingerprint among one client's calls. */
export class Occurrences {
  readonly #seen = new Map<string, number>();

  identity(fp: string): string {
    const n = this.#seen.get(fp) ?? 0;
    this.#seen.set(fp, n + 1);
    return `f:${fp}:${n}`;
  }
}
