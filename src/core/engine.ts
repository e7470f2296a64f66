// The core every surface shares (AutoBatcher, the batching fetch, serve): validate → buffer → batch → tracker →
// settle. Data flows one way, except that a call whose line failed transiently (or whose batch was refused over the
// token limit) goes back to the buffer; each piece of state has one owner (calls waiting: the buffer; calls in
// flight: their batch; calls waiting for capacity: the capacity waits; running batches: the tracker).
import type PQueue from "p-queue";
import { randomBytes } from "node:crypto";
import { Batch, type BatchContext, type ResumedBatch } from "./batch.js";
import type { CallBuffer, Flushed } from "./buffer.js";
import { setMaxListeners } from "node:events";
import { newCall, settle, track, type Call, type Delivery, type SettleSink } from "./call.js";
import { prepareBody, type Endpoint } from "../internal/endpoints.js";
import { APIUserAbortError, ClientClosedError, InvalidParamsError } from "../errors.js";
import type { CapacityWaits } from "./capacity.js";
import { Events } from "../events.js";
import type { Transport } from "../internal/transport.js";
import { LINE_TAIL, lineHead } from "../internal/jsonl.js";
import type { AutoBatcherOptions } from "../options.js";
import { resolveOptions, type ResolvedOptions } from "../options-resolve.js";
import { rejectInSlices } from "./reject-slices.js";
import type { Tracker } from "./tracker.js";
import { detachedError, type Durable, type Line } from "../store/durable.js";
import type { CloseOptions, EngineStats, SubmitOptions } from "./engine-types.js";
import { wireEngine } from "./engine-wiring.js";

export class Engine {
  readonly options: ResolvedOptions;
  readonly events: Events;
  readonly #transport: Transport;
  readonly #queue: PQueue;
  readonly #buffer: CallBuffer;
  readonly #tracker: Tracker;
  readonly #capacity: CapacityWaits;
  readonly #submitting = new Set<Batch>();
  readonly #submissions = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly #idPrefix = randomBytes(6).toString("base64url");
  #seq = 0;
  #pending = 0;
  #batchesCreated = 0;
  #idleWaiters: (() => void)[] = [];
  readonly #sink: SettleSink;
  readonly #batchContext: BatchContext;
  readonly #durable: Durable | undefined;
  /**
   * Where the client is in its life, one way: `open`; `closing` (no new calls; batches taken over from the store are
   * still tracked, a close that waits for its calls needs them); `draining` (a graceful close flushed the buffers:
   * lines buffered again go out at once, see #flushSoon); `stopped` (the tracker stopped: nothing is taken over).
   */
  #phase: "open" | "closing" | "draining" | "stopped" = "open";
  #flushQueued = false;

  constructor(input?: AutoBatcherOptions) {
    this.options = resolveOptions(input);
    this.events = new Events(this.options.onEvent);
    // Every queued task listens on the stop signal; many running batches are normal, not a leak.
    setMaxListeners(0, this.#stop.signal);
    const parts = wireEngine(this.options, {
      events: this.events,
      stop: this.#stop.signal,
      submitting: this.#submitting,
      settled: () => {
        if (--this.#pending === 0) this.#notifyIdle();
      },
      flushSoon: () => this.#flushSoon(),
      flushed: (f) => this.#onFlush(f),
      resume: (r) => this.#resume(r),
    });
    this.#transport = parts.transport;
    this.#queue = parts.queue;
    this.#buffer = parts.buffer;
    this.#tracker = parts.tracker;
    this.#capacity = parts.capacity;
    this.#sink = parts.sink;
    this.#batchContext = parts.batchContext;
    this.#durable = parts.durable;
  }

  /** Where results are kept: the store's file or URL (without credentials); undefined without a store. */
  async storeLocation(): Promise<string | undefined> {
    return this.#durable?.location();
  }

  get stats(): EngineStats {
    let submitting = 0;
    for (const b of this.#submitting) submitting += b.size;
    return {
      buffered: this.#buffer.size,
      waitingForCapacity: this.#capacity.size,
      submitting,
      runningBatches: this.#tracker.running,
      pending: this.#pending,
      batchesCreated: this.#batchesCreated,
      reads: { ...this.#batchContext.reads },
    };
  }

  /** Enqueues one request; resolves with its result body or rejects with a typed error. */
  submit(endpoint: Endpoint, params: unknown, options?: SubmitOptions): Promise<unknown> {
    const P = options?.promiseClass ?? Promise;
    const prepared = this.#prepare(endpoint, params, options);
    if (prepared instanceof Error) return P.reject(prepared);
    const promise = track(prepared.call, P);
    this.#admit(prepared, options);
    return promise;
  }

  /**
   * Enqueues one request of a bulk job: its call settles into `to` under `id`, with no promise. Returns the call, or
   * the error that refused the request (closed client, bad params), which `to` is not told of.
   */
  deliver(endpoint: Endpoint, params: unknown, options: SubmitOptions, to: Delivery, id: string): Call | Error {
    const prepared = this.#prepare(endpoint, params, options);
    if (prepared instanceof Error) return prepared;
    prepared.call.to = to;
    prepared.call.id = id;
    this.#admit(prepared, options);
    return prepared.call;
  }

  /** The call and its line, or why the request is refused before it reaches a buffer. */
  #prepare(endpoint: Endpoint, params: unknown, options: SubmitOptions | undefined): Prepared | Error {
    if (this.#phase !== "open") return new ClientClosedError("the client is closed; it accepts no new calls");
    if (options?.signal?.aborted) return new APIUserAbortError();
    const key = options?.idempotencyKey;
    if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > 512))
      return new InvalidParamsError("idempotencyKey must be a non-empty string of at most 512 characters");
    let prepared: ReturnType<typeof prepareBody>;
    try {
      prepared = prepareBody(endpoint, params, options?.raw, this.#durable ? undefined : options?.bodyText);
    } catch (err) {
      return err as Error;
    }
    const customId = `ab-${this.#idPrefix}-${(this.#seq++).toString(36)}`;
    const head = lineHead(customId, endpoint);
    const bytes = Buffer.byteLength(head) + Buffer.byteLength(prepared.json) + LINE_TAIL.length;
    if (bytes > this.options.maxBatchBytes) {
      return new InvalidParamsError(
        `request is ${bytes} bytes encoded, more than maxBatchBytes (${this.options.maxBatchBytes}): it cannot fit in any batch file`,
      );
    }
    const call = newCall({
      customId,
      endpoint,
      model: (params as { model: string }).model,
      bytes,
      decodeBase64: prepared.decodeBase64,
      raw: options?.raw ?? false,
    });
    return { call, head, json: prepared.json };
  }

  #admit(prepared: Prepared, options: SubmitOptions | undefined): void {
    const { call } = prepared;
    this.#pending++;
    const signal = options?.signal;
    if (signal) this.#watch(call, signal);
    if (this.#durable) this.#durable.admit(call, options?.idempotencyKey, prepared);
    else this.#buffer.add(call, prepared.head, prepared.json);
  }

  /**
   * Calls not yet in a running batch: looked up in the store, buffered, being submitted or waiting for capacity.
   * What a producer that must not run ahead of the uploads waits on.
   */
  get backlog(): number {
    let n = this.#buffer.size + this.#capacity.size + (this.#durable?.looking ?? 0);
    for (const b of this.#submitting) n += b.size;
    return n;
  }

  #watch(call: Call, signal: NonNullable<SubmitOptions["signal"]>): void {
    const onAbort = () => this.#abort(call);
    signal.addEventListener("abort", onAbort, { once: true });
    call.detach = () => signal.removeEventListener("abort", onAbort);
  }

  #abort(call: Call): void {
    if (!call.settled) this.release(call, new APIUserAbortError({ customId: call.customId, batchId: call.batchId }));
  }

  /** Lets a waiting caller go with `reason`: its line leaves its buffer, or its batch goes on without it. */
  release(call: Call, reason: unknown): void {
    if (call.settled) return;
    if (!this.#buffer.remove(call) && call.owner) call.owner.release(call, reason);
    else settle(call, this.#sink, false, reason);
  }

  /**
   * Once a graceful close has flushed the buffers, lines buffered again (a retry, capacity freed, a line the store
   * says was lost) go out at once, whatever the window (close() waits for them): together, one flush per turn, not a
   * batch per line.
   */
  #flushSoon(): void {
    if (this.#phase !== "draining" || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#buffer.flushAll("close");
    });
  }

  #onFlush(f: Flushed): void {
    this.events.emit("flush", {
      endpoint: f.endpoint,
      model: f.model,
      calls: f.calls.length,
      bytes: f.bytes,
      reason: f.reason,
    });
    const batch = new Batch(f, this.#batchContext);
    this.#submitting.add(batch);
    const submission = batch.submit(this.#stop.signal).then(async (ok) => {
      this.#submitting.delete(batch);
      if (ok) this.#batchesCreated++;
      // Detached: it goes on upstream for a later process on the store.
      if (this.#durable?.recorder.detaching) return;
      // Closed with cancel while its create was in doubt: it may bill upstream, so find it by its key and cancel it.
      if (!ok) return batch.inDoubt ? batch.cancelUpstream() : undefined;
      // Nobody waits (closed with cancel, or every caller aborted during submission): do not leave it billing.
      if (this.#stop.signal.aborted || batch.unsettled === 0) return batch.cancelUpstream();
      this.#tracker.add(batch);
    });
    // close({ cancel: true }) waits for those cancels before it closes the transport.
    this.#submissions.add(submission);
    void submission.finally(() => this.#submissions.delete(submission));
  }

  #stopTracking(): void {
    this.#phase = "stopped";
    this.#tracker.stop();
  }

  /** A batch an earlier process recorded: tracked here from where it was left, its results stored. */
  #resume(r: ResumedBatch): void {
    if (this.#phase === "stopped") {
      this.#durable?.release([r.key]);
      return;
    }
    const batch = Batch.resume(r, this.#batchContext);
    this.events.emit("batchResumed", {
      batchId: r.id,
      endpoint: r.endpoint,
      model: r.model,
      lines: r.customIds.length,
      unread: r.unread.length,
    });
    if (batch.id) {
      this.#tracker.add(batch);
      return;
    }
    void batch.reattach(this.#stop.signal).then((ok) => {
      if (ok && this.#phase !== "stopped") this.#tracker.add(batch);
      else if (!batch.done) this.#durable?.release([batch.key]);
    });
  }

  /** The door to the provider, for surfaces that also send requests of their own (serve's `/models` passthrough). */
  get transport(): Transport {
    return this.#transport;
  }

  /** Resolves when no call is waiting anywhere. */
  onIdle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Flushes what is buffered and waits for every call to settle; with `cancel`, cancels and rejects instead. */
  async close(options: CloseOptions = {}): Promise<void> {
    // A second close (an interrupt during a graceful one) never moves the phase back.
    if (this.#phase === "open") this.#phase = "closing";
    if (options.detach && this.#durable) {
      this.#durable.recorder.detaching = true;
      await this.#durable.admitted();
      // Nothing of theirs was created upstream (buffered, or refused over capacity): a later process submits them.
      const waiting = [...this.#buffer.drain(), ...this.#capacity.drain()];
      const rejecting = rejectInSlices(waiting, detachedError, (call, error) => settle(call, this.#sink, false, error));
      this.#stop.abort(new ClientClosedError("the client was closed with detach"));
      const running = [...this.#tracker.batches];
      this.#stopTracking();
      await Promise.all([rejecting, ...[...this.#submitting, ...running].map((b) => b.abandon(detachedError))]);
    } else if (options.cancel) {
      const closed = (call: Call) =>
        new ClientClosedError("the client was closed with cancel: this call was released before its result arrived", {
          customId: call.customId,
          batchId: call.batchId,
        });
      // Rejected in slices that yield to the event loop: a million waiting calls must not stall the app.
      const waiting = [...this.#buffer.drain(), ...this.#capacity.drain()];
      const rejecting = rejectInSlices(waiting, closed, (call, error) => settle(call, this.#sink, false, error));
      this.#stop.abort(new ClientClosedError("the client was closed with cancel"));
      const running = [...this.#tracker.batches];
      this.#stopTracking();
      const abandoned = [...this.#submitting, ...running].map((b) => b.abandon(closed));
      await Promise.all([rejecting, ...abandoned, ...running.map((b) => b.cancelUpstream())]);
      await Promise.all(this.#submissions);
    } else {
      await this.#durable?.admitted();
      if (this.#phase === "closing") this.#phase = "draining";
      this.#buffer.flushAll("close");
      await this.onIdle();
      await this.#tracker.finishSettled();
      this.#stopTracking();
    }
    await this.#queue.onIdle().catch(() => undefined);
    await this.#durable?.close(options.detach === true);
    await this.#transport.close();
  }
}

/** A call and its JSONL line (the line lives only until the call is buffered or looked up in the store). */
interface Prepared extends Line {
  call: Call;
}
