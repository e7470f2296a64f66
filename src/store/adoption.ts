// Orphans (requestIdentity "adopt"): an unkeyed line whose caller died with its process is adopted by an identical
// call, so a client retrying a request lost in a crash gets the line already paid for instead of a second one. A call
// that finds no orphan but a batch that may hold one (leased elsewhere, its holder's fate not yet known) waits until
// the holder renews the lease (alive: the call is submitted) or the lease runs out and a claim orphans the line.
import type { Call } from "../core/call.js";
import { lineIdentity } from "./identity.js";
import type { Adoptions, FoundLine, Store, Suspect } from "./types.js";

export interface AdopterHooks<A> {
  /** Places the call as a lookup by name would: the orphan adopted (the call renamed after it), or none (submit). */
  place(admitted: A, found: FoundLine | undefined): void;
  warn(message: string): void;
  closed(): boolean;
}

/** The calls of one engine that look for orphans, and those among them waiting for the next look. */
export class Adopter<A extends { call: Call }> {
  readonly #owner: string;
  readonly #hooks: AdopterHooks<A>;
  #waiting: Seeker<A>[] = [];
  /** The calls of this turn of the event loop, looked for together once it ends. */
  #next: { seekers: Seeker<A>[]; looked: Promise<void> } | undefined;

  constructor(owner: string, hooks: AdopterHooks<A>) {
    this.#owner = owner;
    this.#hooks = hooks;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Looks for these calls, with every other one admitted in this turn of the event loop (a server gets its requests
   * one per tick; one look serves them all): each adopts an orphan, waits for the next look, or is submitted.
   */
  seek(store: Store, admitted: A[]): Promise<void> {
    const seekers = admitted.map((a) => new Seeker(a));
    if (this.#next) {
      this.#next.seekers.push(...seekers);
      return this.#next.looked;
    }
    const next = { seekers, looked: new Promise<void>((resolve) => setImmediate(resolve)) };
    next.looked = next.looked.then(() => {
      this.#next = undefined;
      return this.#look(store, next.seekers);
    });
    this.#next = next;
    return next.looked;
  }

  /** Looks again for the calls that wait, after a claim (which may have orphaned their lines). */
  again(store: Store): Promise<void> {
    const seekers = this.#waiting.filter((s) => !s.call.settled);
    this.#waiting = [];
    return seekers.length && !this.#hooks.closed() ? this.#look(store, seekers) : Promise.resolve();
  }

  /** Takes the calls that wait (the engine closes). */
  drain(): A[] {
    const out = this.#waiting.map((s) => s.admitted);
    this.#waiting = [];
    return out;
  }

  /** One look for all of these calls (each adopts at most one orphan); a failed look submits them. */
  async #look(store: Store, seekers: Seeker<A>[]): Promise<void> {
    let out: Adoptions = { adopted: new Map(), suspects: new Map() };
    const requests = seekers.map((s) => ({
      fingerprint: s.call.fingerprint!,
      identity: lineIdentity(s.call.customId),
    }));
    try {
      out = await store.adopt(requests, this.#owner);
    } catch (err) {
      this.#hooks.warn(`${(err as Error).message}; these calls are submitted without looking for orphaned lines`);
    }
    seekers.forEach((s, i) => {
      const { identity, fingerprint } = requests[i]!;
      const adopted = out.adopted.get(identity);
      if (adopted) {
        s.call.identity = identity;
        this.#hooks.place(s.admitted, adopted);
      } else if (s.waits(out.suspects.get(fingerprint) ?? []) && !s.call.settled && !this.#hooks.closed())
        this.#waiting.push(s);
      else this.#hooks.place(s.admitted, undefined);
    });
  }
}

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
