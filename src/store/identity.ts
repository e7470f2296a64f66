// A request's identity, stable across processes and reruns: an explicit idempotency key, or the fingerprint of its
// endpoint and body plus its occurrence number among this client's calls with that fingerprint (so k
// identical calls are k distinct lines, and the n-th of a rerun replays the n-th of the first run).
import { hash } from "node:crypto";

/** Bodies up to this size are hashed from one reused buffer; larger ones (rare) from a string made for them. */
const SCRATCH_BYTES = 64 * 1024;
let scratch: Buffer | undefined;

/**
 * 128 bits of SHA-256 over the endpoint, "\n" and the body as it goes into the batch file (the params serialised in
 * their own key order: a program run again builds them the same way, and hashing the text already encoded costs no
 * second serialisation on the hot path), base64url.
 */
export function fingerprint(endpoint: string, body: string): string {
  // UTF-8 written into one reused buffer: hashing `${endpoint}\n${body}` made a flat copy of every body, garbage that
  // cost the young generation more scavenges than the hashing itself.
  if ((endpoint.length + 1 + body.length) * 3 > SCRATCH_BYTES)
    return hash("sha256", `${endpoint}\n${body}`, "base64url").slice(0, 22);
  scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
  let n = scratch.write(endpoint, 0);
  scratch[n++] = 0x0a;
  n += scratch.write(body, n);
  return hash("sha256", scratch.subarray(0, n), "base64url").slice(0, 22);
}

export const keyIdentity = (key: string) => `k:${key}`;

/**
 * A line no call names: `u:<custom_id>`. With requestIdentity "adopt" (see docs/durable-state.md "Orphans") its
 * fingerprint is kept beside it, so that a claim from another owner can rename it `o:<fingerprint>`: an orphan, found
 * by the identity index; adopted, it takes its adopter's `u:<custom_id>` and loses the fingerprint (adopted once).
 */
export const orphanIdentity = (fp: string) => `o:${fp}`;
export const lineIdentity = (customId: string) => `u:${customId}`;

/** Counts occurrences of each fingerprint among one client's calls. */
export class Occurrences {
  readonly #seen = new Map<string, number>();

  identity(fp: string): string {
    const n = this.#seen.get(fp) ?? 0;
    this.#seen.set(fp, n + 1);
    return `f:${fp}:${n}`;
  }
}
