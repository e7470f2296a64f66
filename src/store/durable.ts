// The engine's durable side, present only with a `store`: each new call is looked up by its identity (a stored
// result settles it at once, a line still running somewhere makes it wait on the store, anything else is
// submitted, or, unkeyed, adopts an orphaned line like it: see adoption.ts); batches are recorded through the
// StoreRecorder; one timer per engine, running only while this process holds a lease or a call waits on the store,
// renews leases, takes over batches whose holder died and answers the calls that wait.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { ResumedBatch } from "../core/batch.js";
import { settle, type Call, type SettleSink } from "../core/call.js";
import { lineOutcome, parseLine } from "../core/line-result.js";
import { ClientClosedError, InvalidParamsError, ResultParseError } from "../errors.js";
import type { Events } from "../events.js";
import type { Clock } from "../internal/clock.js";
import type { Endpoint } from "../internal/endpoints.js";
import { LINE_TAIL } from "../internal/jsonl.js";
import { Adopter } from "./adoption.js";
import { fingerprint, keyIdentity, Occurrences } from "./identity.js";
import { openStore } from "./open.js";
import { StoreRecorder } from "./recorder.js";
import type { FoundLine, Store, StoredBatch } from "./types.js";
import { StoreWriter } from "./writer.js";

/** Batches taken over per look. */
const CLAIM_LIMIT = 100;
/** A lease outlives this many poll intervals without renewal before another process may take the batch. */
const LEASE_POLLS = 3;
const MIN_LEASE_MS = 1_000;

export interface DurableOptions {
  store: string;
  retentionMs: number;
  /** AutoBatcherOptions' `requestIdentity`. */
  identity: "fingerprint" | "keys" | "adopt";
  pollIntervalMs: number;
}

export interface DurableHooks {
  clock: Clock;
  events: Events;
  sink: SettleSink;
  /** Submits the call as without a store (its buffer). */
  enqueue(call: Call, line: Line): void;
  /** Tracks a batch taken over from an earlier process. */
  resume(batch: ResumedBatch): void;
}

/** A call's JSONL line, kept only while its lookup runs. */
export interface Line {
  head: string;
  json: string;
}

interface Admitted {
  call: Call;
  line: Line;
}

export class Durable {
  readonly recorder: StoreRecorder;
  readonly #ready: Promise<Store>;
  readonly #writer: StoreWriter;
  readonly #opts: DurableOptions;
  readonly #hooks: DurableHooks;
  readonly #owner = `${hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`;
  readonly #leaseMs: number;
  readonly #occurrences = new Occurrences();
  #lookups: Admitted[] = [];
  /** Calls of the lookup under way (the store not answered yet, or an orphan sought). */
  #inLookup = 0;
  #lookingUp: Promise<void> = Promise.resolve();
  /** Calls waiting on a line that runs in a batch tracked elsewhere (or not yet read), by identity. */
  readonly #waiters = new Map<string, Admitted[]>();
  /** Unkeyed calls looking for an orphan (requestIdentity "adopt"). */
  readonly #adopter: Adopter<Admitted>;
  /** Keyed calls submitted here and not yet settled: a second call with the key waits for the first. */
  readonly #leaders = new Map<string, Call>();
  #timer: unknown;
  #ticking = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(opts: DurableOptions, hooks: DurableHooks) {
    this.#opts = opts;
    this.#hooks = hooks;
    this.#leaseMs = Math.max(MIN_LEASE_MS, LEASE_POLLS * opts.pollIntervalMs);
    const warn = (message: string) => hooks.events.emit("warning", { message });
    this.#ready = openStore(opts.store, { now: () => hooks.clock.Date.now(), onWarning: warn });
    this.#writer = new StoreWriter(this.#ready, {
      clock: hooks.clock,
      owner: this.#owner,
      leaseMs: this.#leaseMs,
      warn,
      wrote: () => void this.#check(),
    });
    this.recorder = new StoreRecorder(
      this.#writer,
      () => this.#arm(),
      (calls, found) => this.#withdrawn(calls, found),
    );
    this.#adopter = new Adopter(this.#owner, {
      place: (a, found) => this.#place(a, found),
      warn,
      closed: () => this.#closed,
    });
    this.#ready.then(
      (store) => this.#start(store),
      (err: Error) => warn(err.message),
    );
  }

  /** Where the store is (the file, or the URL without credentials); rejects when it could not be opened. */
  async location(): Promise<string> {
    return (await this.#ready).location;
  }

  async #start(store: Store): Promise<void> {
    try {
      await store.purge(this.#opts.retentionMs);
    } catch (err) {
      this.#warn(`could not purge old batches: ${(err as Error).message}`);
    }
    await this.#claim(store);
    this.#arm();
  }

  /** Gives the call its identity and places it once its lookup is back (lookups of one tick share one query). */
  admit(call: Call, key: string | undefined, line: Line): void {
    if (key !== undefined || this.#opts.identity === "fingerprint") {
      call.fingerprint = fingerprint(call.endpoint, line.json);
      call.identity = key !== undefined ? keyIdentity(key) : this.#occurrences.identity(call.fingerprint);
    } else if (this.#opts.identity === "adopt") call.fingerprint = fingerprint(call.endpoint, line.json);
    if (this.#lookups.push({ call, line }) === 1)
      queueMicrotask(() => {
        this.#lookingUp = Promise.all([this.#lookingUp, this.#lookUp()]).then(() => undefined);
      });
  }

  /** Resolves when every call admitted so far has been placed (close flushes the buffers after this). */
  async admitted(): Promise<void> {
    while (this.#lookups.length) await new Promise<void>((r) => queueMicrotask(r));
    await this.#lookingUp;
  }

  /** Calls admitted and not yet placed (buffered, answered or waiting): a producer's backlog (see Engine.backlog). */
  get looking(): number {
    return this.#lookups.length + this.#inLookup;
  }

  async #lookUp(): Promise<void> {
    const batch = this.#lookups;
    this.#lookups = [];
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
        this.#warn(`${(err as Error).message}; these calls are submitted without looking for earlier results`);
      }
    for (const a of named) this.#place(a, a.call.identity ? found.get(a.call.identity) : undefined);
    if (seekers.length) {
      await this.#adopter.seek(store, seekers);
      this.#arm();
    }
  }

  #place(a: Admitted, found: FoundLine | undefined): void {
    const { call } = a;
    if (call.settled) return;
    if (this.#closed) {
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
  #withdrawn(calls: Call[], found: Map<string, FoundLine>): void {
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
    this.#arm();
  }

  /** Answers the calls waiting on the store from what it holds now. */
  async #check(): Promise<void> {
    if (this.#waiters.size === 0 || this.#closed) return;
    let found: Map<string, FoundLine>;
    // Only what was asked about: a call that starts waiting meanwhile is not missing from the store, only unasked.
    const asked = [...this.#waiters.keys()];
    try {
      found = await (await this.#ready).find(asked);
    } catch (err) {
      return this.#warn(`${(err as Error).message}; calls waiting on the store keep waiting`);
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

  async #claim(store: Store): Promise<void> {
    let taken: StoredBatch[];
    try {
      taken = await store.claim(this.#owner, this.#leaseMs, CLAIM_LIMIT);
    } catch (err) {
      return this.#warn(`could not look for unfinished batches: ${(err as Error).message}`);
    }
    for (const b of taken) {
      // Its own lease, renewed late (a slow store): the batch is still tracked here, only the lease is back.
      if (this.recorder.held.has(b.key)) continue;
      if (this.#closed) this.release([b.key]);
      else this.#resume(b);
    }
  }

  #resume(stored: StoredBatch): void {
    const unread = stored.lines.filter((l) => l.result === undefined).map((l) => l.customId);
    if (unread.length === 0) {
      this.#writer.update({ key: stored.key, terminal: true });
      return;
    }
    this.recorder.held.add(stored.key);
    const s = stored.snapshot;
    this.#hooks.resume({
      key: stored.key,
      endpoint: stored.endpoint as Endpoint,
      model: stored.model,
      id: s?.batchId,
      inputFileId: s?.fileId,
      status: s?.status ?? "submitting",
      counts: s?.counts ?? { total: 0, completed: 0, failed: 0 },
      output: s?.output,
      error: s?.error,
      batchErrors: s?.batchErrors,
      createdAt: stored.createdAt,
      customIds: stored.lines.map((l) => l.customId),
      unread,
    });
  }

  /** Leaves these batches, unleased, to a later process (close, or a resume that could not reach the provider). */
  release(keys: string[]): void {
    this.recorder.release(keys);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return;
    if (this.recorder.held.size === 0 && this.#waiters.size === 0 && this.#adopter.waiting === 0) return;
    this.#timer = this.#hooks.clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#tick().finally(() => this.#arm());
    }, this.#opts.pollIntervalMs);
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const store = await this.#ready;
      if (this.recorder.held.size)
        await store.renew(this.#owner, this.#leaseMs).catch((err: Error) => this.#warn(err.message));
      await this.#claim(store);
      await this.#check();
      await this.#adopter.again(store);
    } finally {
      this.#ticking = false;
    }
  }

  /** Stops: callers still waiting on the store are released (detach) — their lines go on for a later process. */
  close(detach: boolean): Promise<void> {
    this.#closing ??= this.#close(detach);
    return this.#closing;
  }

  async #close(detach: boolean): Promise<void> {
    await this.admitted();
    this.#closed = true;
    this.#hooks.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiting = [...[...this.#waiters.values()].flat(), ...this.#adopter.drain()];
    for (const a of waiting) this.#settle(a.call, false, detach ? detachedError(a.call) : closedError(a.call));
    this.#waiters.clear();
    this.recorder.release([...this.recorder.held]);
    let store: Store;
    try {
      store = await this.#ready;
    } catch {
      return;
    }
    await this.#writer.flush();
    const lost = this.#writer.stop();
    if (lost) this.#warn(`store ${store.location}: ${lost} write(s) could not be made before close`);
    await store.close();
  }

  #settle(call: Call, ok: boolean, value: unknown): void {
    settle(call, this.#hooks.sink, ok, value);
  }

  #warn(message: string): void {
    this.#hooks.events.emit("warning", { message });
  }
}

/** An unkeyed call that may adopt an orphan (requestIdentity "adopt"): it has a fingerprint but no identity. */
function seeks(call: Call): boolean {
  return call.identity === undefined && call.fingerprint !== undefined && !call.settled;
}

export function detachedError(call: Call): ClientClosedError {
  return new ClientClosedError(
    "the client was closed with detach: this call was released before its result arrived; its batch goes on upstream for a later process on the same store",
    { customId: call.customId, batchId: call.batchId },
  );
}

function closedError(call: Call): ClientClosedError {
  return new ClientClosedError("the client was closed before this call's line could be looked up", {
    customId: call.customId,
  });
}
