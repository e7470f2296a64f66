// Orphans (requestIdentity "adopt"): an unkeyed line whose caller died with its process is adopted by an identical
// call, so a client retrying a request lost in a crash gets the line already paid for instead of a second one. A call
// that finds no orphan but a batch that may hold one (leased elsewhere, its holder's fate not yet known) waits until
// the holder renews the lease (alive: the call is submitted) or the lease runs out and a claim orphans the line.
import type { Call } from "../core/call.js";
import { lineIdentity } from "./identity.js";
import type { Adoptions, FoundLine, Store, Suspect } from "./types.js";

interface Seen {
  until: number;
  expired: boolean;
}

/** An unkeyed call looking for an orphan, and what it has seen of the batches that may hold one. */
export class Seeker<A extends { call: Call }> {
  readonly admitted: A;
  /** The batches suspected on the first look; later ones are not waited for, so the wait is bounded. */
  #seen: Map<string, Seen> | undefined;

  constructor(admitted: A) {
    this.admitted = admitted;
  }

  get call(): Call {
    return this.admitted.call;
  }

  /**
   * Whether to look again after the next claim: some batch first suspected is neither renewed (its holder lives, its
   * callers wait for the line) nor gone from the suspects (taken over: the line is an orphan now), nor expired on two
   * looks in a row (a claim ran between them and did not take it).
   */
  waits(suspects: readonly Suspect[]): boolean {
    const first = this.#seen === undefined;
    this.#seen ??= new Map();
    let wait = false;
    for (const s of suspects) {
      const seen = this.#seen.get(s.key);
      if (!seen) {
        if (first) this.#seen.set(s.key, { until: s.leaseUntil, expired: s.expired });
        wait ||= first;
      } else if (s.leaseUntil === seen.until && !(seen.expired && s.expired)) {
        seen.expired = s.expired;
        wait = true;
      }
    }
    return wait;
  }
}

export type Sought = { adopted: FoundLine } | { wait: true } | { submit: true };

/** One look for all of these calls (each adopts at most one orphan); a failed look submits them. */
export async function seek<A extends { call: Call }>(
  store: Store,
  owner: string,
  seekers: readonly Seeker<A>[],
  warn: (message: string) => void,
): Promise<Sought[]> {
  let out: Adoptions = { adopted: new Map(), suspects: new Map() };
  const requests = seekers.map((s) => ({ fingerprint: s.call.fingerprint!, identity: lineIdentity(s.call.customId) }));
  try {
    out = await store.adopt(requests, owner);
  } catch (err) {
    warn(`${(err as Error).message}; these calls are submitted without looking for orphaned lines`);
  }
  return seekers.map((s, i) => {
    const adopted = out.adopted.get(requests[i]!.identity);
    if (adopted) return { adopted };
    return s.waits(out.suspects.get(requests[i]!.fingerprint) ?? []) ? { wait: true } : { submit: true };
  });
}
