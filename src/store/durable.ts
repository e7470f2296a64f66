// The engine's durable side, present only with a `store`: each new call is looked up by its identity (see
// lookup.ts); batches are recorded through the StoreRecorder; one timer per engine, running only while this process
// holds a lease or a call waits on the store, renews leases, takes over batches whose holder died and answers the
// calls that wait.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { ResumedBatch } from "../core/batch.js";
import type { Call } from "../core/call.js";
import { ClientClosedError } from "../errors.js";
import type { Events } from "../events.js";
import type { Clock } from "../internal/clock.js";
import type { Endpoint } from "../internal/endpoints.js";
import { closedError, type Line, type LookupHooks, Lookups } from "./lookup.js";
import { openStore } from "./open.js";
import { StoreRecorder } from "./recorder.js";
import type { Store, StoredBatch } from "./types.js";
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

export type { Line };

export interface DurableHooks extends Pick<LookupHooks, "sink" | "enqueue"> {
  clock: Clock;
  events: Events;
  /** Tracks a batch taken over from an earlier process. */
  resume(batch: ResumedBatch): void;
}

export class Durable {
  readonly recorder: StoreRecorder;
  readonly #ready: Promise<Store>;
  readonly #writer: StoreWriter;
  readonly #opts: DurableOptions;
  readonly #hooks: DurableHooks;
  readonly #owner = `${hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`;
  readonly #leaseMs: number;
  readonly #lookups: Lookups;
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
    this.#lookups = new Lookups(this.#ready, this.#owner, opts.identity, {
      sink: hooks.sink,
      enqueue: (call, line) => hooks.enqueue(call, line),
      arm: () => this.#arm(),
      warn,
      closed: () => this.#closed,
    });
    this.#writer = new StoreWriter(this.#ready, {
      clock: hooks.clock,
      owner: this.#owner,
      leaseMs: this.#leaseMs,
      warn,
      wrote: () => void this.#lookups.check(),
    });
    this.recorder = new StoreRecorder(
      this.#writer,
      () => this.#arm(),
      (calls, found) => this.#lookups.withdrawn(calls, found),
    );
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

  /** Gives the call its identity and places it once its lookup is back (see Lookups.admit). */
  admit(call: Call, key: string | undefined, line: Line): void {
    this.#lookups.admit(call, key, line);
  }

  /** Resolves when every call admitted so far has been placed (close flushes the buffers after this). */
  admitted(): Promise<void> {
    return this.#lookups.admitted();
  }

  /** Calls admitted and not yet placed (buffered, answered or waiting): a producer's backlog (see Engine.backlog). */
  get looking(): number {
    return this.#lookups.looking;
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
    if (this.recorder.held.size === 0 && !this.#lookups.waiting) return;
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
      await this.#lookups.check();
      await this.#lookups.again(store);
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
    this.#lookups.close(detach ? detachedError : closedError);
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

  #warn(message: string): void {
    this.#hooks.events.emit("warning", { message });
  }
}

export function detachedError(call: Call): ClientClosedError {
  return new ClientClosedError(
    "the client was closed with detach: this call was released before its result arrived; its batch goes on upstream for a later process on the same store",
    { customId: call.customId, batchId: call.batchId },
  );
}
