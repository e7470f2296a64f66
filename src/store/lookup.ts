// The lookups of a durable engine: each new call is looked up by its identity (a stored result settles it at once, a
// line still running somewhere makes it wait on the store, anything else is submitted, or, unkeyed, adopts an
// orphaned line like it: see adoption.ts); the calls that wait are answered on each check of the store.
import { settle, type Call, type SettleSink } from "../core/call.js";
import { lineOutcome, parseLine } from "../core/line-result.js";
import { ClientClosedError, InvalidParamsError, ResultParseError } from "../errors.js";
import type { Endpoint } from "../internal/endpoints.js";
import { LINE_TAIL } from "../internal/jsonl.js";
import type { RequestIdentity } from "../options.js";
import { Adopter } from "./adoption.js";
import { fingerprint, keyIdentity, Occurrences } from "./identity.js";
import type { FoundLine, Store } from "./types.js";

/** A call's JSONL line, kept only while its lookup runs. */
export interface Line {
  head: string;
  json: string;
}

interface Admitted {
  call: Call;
  line: Line;
}

export interface LookupHooks {
  sink: SettleSink;
  /** Submits the call as without a store (its buffer). */
  enqueue(call: Call, line: Line): void;
  /** Some call may now wait on the store: the timer that checks it must run. */
  arm(): void;
  warn(message: string): void;
  closed(): boolean;
}

/** The calls of one engine from admission until placed, and those placed to wait on the store. */
export class Lookups {
  readonly #ready: Promise<Store>;
  readonly #identity: RequestIdentity;
  readonly #hooks: LookupHooks;
  readonly #occurrences = new Occurrences();
  /** Calls admitted since the last lookup began: the next one takes them all. */
  #queued: Admitted[] = [];
  /** Calls of the lookup under way (the store not answered yet, or an orphan sought). */
  #inLookup = 0;
  #lookingUp: Promise<void> = Promise.resolve();
  /** Calls waiting on a line that runs in a batch tracked elsewhere (or not yet read), by identity. */
  readonly #waiters = new Map<string, Admitted[]>();
  /** Unkeyed calls looking for an orphan (requestIdentity "adopt"). */
  readonly #adopter: Adopter<Admitted>;
  /** Keyed calls submitted here and not yet settled: a second call with the key waits for the first. */
  readonly #leaders = new Map<string, Call>();

  constructor(ready: Promise<Store>, owner: string, identity: RequestIdentity, hooks: LookupHooks) {
    this.#ready = ready;
    this.#identity = identity;
    this.#hooks = hooks;
    this.#adopter = new Adopter(owner, {
      place: (a, found) => this.#place(a, found),
      warn: (message) => hooks.warn(message),
      closed: () => hooks.closed(),
    });
  }

  /** Whether some call waits on the store or for the next look for orphans. */
  get waiting(): boolean {
    return this.#waiters.size > 0 || this.#adopter.waiting > 0;
  }

  /** Gives the call its identity and places it once its lookup is back (lookups of one tick share one query). */
  admit(call: Call, key: string | undefined, line: Line): void {
    if (key !== undefined || this.#identity === "fingerprint") {
      call.fingerprint = fingerprint(call.endpoint, line.json);
      call.identity = key !== undefined ? keyIdentity(key) : this.#occurrences.identity(call.fingerprint);
    } else if (this.#identity === "adopt") call.fingerprint = fingerprint(call.endpoint, line.json);
    if (this.#queued.push({ call, line }) === 1)
      queueMicrotask(() => {
        this.#lookingUp = Promise.all([this.#lookingUp, this.#lookUp()]).then(() => undefined);
      });
  }

  /** Resolves when every call admitted so far has been placed (close flushes the buffers after this). */
  async admitted(): Promise<void> {
    while (this.#queued.length) await new Promise<void>((r) => queueMicrotask(r));
    await this.#lookingUp;
  }

  /** Calls admitted and not yet placed (buffered, answered or waiting): a producer's backlog (see Engine.backlog). */
  get looking(): number {
    return this.#queued.length + this.#inLookup;
  }

  async #lookUp(): Promise<void> {
    const batch = this.#queued;
    this.#queued = [];
    this.#inLookup += batch.length;
    try {
      await this.#lookUpBatch(batch);
    } finally {
      this.#inLookup -= batch.length;
    }
  }

  async #lookUpBatch(batch: Admitted[]): Promise<void> {
    let store: Store;
    try {
      store = await this.#ready;
    } catch (err) {
      for (const { call } of batch) this.#settle(call, false, err);
      return;
    }
    const seekers = batch.filter((a) => seeks(a.call));
    const named = seekers.length ? batch.filter((a) => !seeks(a.call)) : batch;
    const ids = named.flatMap((a) => (a.call.identity && !a.call.settled ? [a.call.identity] : []));
    let found = new Map<string, FoundLine>();
    if (ids.length)
      try {
        found = await store.find(ids);
      } catch (err) {
        this.#hooks.warn(`${(err as Error).message}; these calls are submitted without looking for earlier results`);
      }
    for (const a of named) this.#place(a, a.call.identity ? found.get(a.call.identity) : undefined);
    if (seekers.length) {
      await this.#adopter.seek(store, seekers);
      this.#hooks.arm();
    }
  }

  #place(a: Admitted, found: FoundLine | undefined): void {
    const { call } = a;
    if (call.settled) return;
    if (this.#hooks.closed()) {
      this.#settle(call, false, closedError(call));
      return;
    }
    const id = call.identity;
    const leader = id ? this.#leaders.get(id) : undefined;
    const earlier = found?.fingerprint ?? (leader && !leader.settled ? leader.fingerprint : undefined);
    if (id?.startsWith("k:") && earlier !== undefined && earlier !== call.fingerprint) {
      this.#settle(
        call,
        false,
        new InvalidParamsError(
          `idempotency key ${JSON.stringify(id.slice(2, 80))} was first used with a different request (endpoint or body): a new request needs a new key`,
          "idempotencyKey",
        ),
      );
      return;
    }
    if (found?.state === "done") this.#replay(call, found);
    else if (found?.state === "running" || (leader && !leader.settled)) this.#wait(a);
    else {
      if (id?.startsWith("k:")) this.#leaders.set(id, call);
      this.#hooks.enqueue(call, a.line);
    }
  }

  /**
   * Calls whose identity another process recorded first (both looked it up before either recorded it): taken out of
   * their file before upload, each replays or waits on the line found, as if its lookup had found it.
   */
  withdrawn(calls: Call[], found: Map<string, FoundLine>): void {
    for (const call of calls) {
      // Its line as written, kept while it waits: should the other line be lost, this one is submitted after all.
      const head = call.chunk!.toString("utf8", call.offset!, call.offset! + call.bytes - LINE_TAIL.length);
      call.chunk = undefined;
      const id = call.identity!;
      if (this.#leaders.get(id) === call) this.#leaders.delete(id);
      this.#place({ call, line: { head, json: "" } }, found.get(call.customId));
    }
  }

  /** Settles the call from a stored result line, shaped as this call asks (raw or not). */
  #replay(call: Call, found: FoundLine): void {
    call.batchId = found.batchId;
    const parsed = parseLine(found.result ?? "");
    if ("why" in parsed) {
      const error = new ResultParseError(`stored result line for this call ${parsed.why}`, {
        customId: call.customId,
        batchId: found.batchId,
      });
      this.#settle(call, false, error);
      return;
    }
    const ctx = { endpoint: call.endpoint as Endpoint, batchId: found.batchId, batchStatus: "completed" };
    const out = lineOutcome(call, parsed.line, ctx);
    this.#settle(call, out.ok, out.value);
  }

  #wait(a: Admitted): void {
    const id = a.call.identity!;
    const list = this.#waiters.get(id);
    if (list) list.push(a);
    else this.#waiters.set(id, [a]);
    this.#hooks.arm();
  }

  /** Answers the calls waiting on the store from what it holds now. */
  async check(): Promise<void> {
    if (this.#waiters.size === 0 || this.#hooks.closed()) return;
    let found: Map<string, FoundLine>;
    // Only what was asked about: a call that starts waiting meanwhile is not missing from the store, only unasked.
    const asked = [...this.#waiters.keys()];
    try {
      found = await (await this.#ready).find(asked);
    } catch (err) {
      return this.#hooks.warn(`${(err as Error).message}; calls waiting on the store keep waiting`);
    }
    for (const id of asked) {
      const list = this.#waiters.get(id);
      if (!list) continue;
      const live = list.filter((a) => !a.call.settled);
      const f = found.get(id);
      const leader = this.#leaders.get(id);
      if (leader?.settled) this.#leaders.delete(id);
      if (live.length === 0) this.#waiters.delete(id);
      else if (f?.state === "done") {
        this.#waiters.delete(id);
        for (const a of live) this.#replay(a.call, f);
      } else if (f?.state === "lost" || (!f && !(leader && !leader.settled))) {
        // Its batch ended without it (never created, failed, expired), or its first caller left before the line
        // was recorded: submitted now, as a rerun would.
        this.#waiters.delete(id);
        for (const a of live) {
          // An adopted line that ended without a result: submitted as an unkeyed line again, open to adoption.
          if (id.startsWith("u:")) a.call.identity = undefined;
          this.#place(a, undefined);
        }
      }
    }
  }

  /** Looks again for the calls that wait for an orphan, after a claim (see Adopter.again). */
  again(store: Store): Promise<void> {
    return this.#adopter.again(store);
  }

  /** Settles every call that waits, with the error `why` makes for it (the engine closes). */
  close(why: (call: Call) => Error): void {
    const waiting = [...[...this.#waiters.values()].flat(), ...this.#adopter.drain()];
    for (const a of waiting) this.#settle(a.call, false, why(a.call));
    this.#waiters.clear();
  }

  #settle(call: Call, ok: boolean, value: unknown): void {
    settle(call, this.#hooks.sink, ok, value);
  }
}

/** An unkeyed call that may adopt an orphan (requestIdentity "adopt"): it has a fingerprint but no identity. */
function seeks(call: Call): boolean {
  return call.identity === undefined && call.fingerprint !== undefined && !call.settled;
}

export function closedError(call: Call): ClientClosedError {
  return new ClientClosedError("the client was closed before this call's line could be looked up", {
    customId: call.customId,
  });
}
