// A bulk job: many requests in, their results out as one async iterable, in completion order. Each request's call
// settles into the job (`Call.to`), not into a promise of its own. The input is read only while few enough of the
// job's results wait to be read and few enough lines wait to be uploaded, so a stream of millions is never held whole.
import type { Call, Delivery } from "./call.js";
import type { Engine } from "./engine.js";
import type { SubmitOptions } from "./engine-types.js";
import { APIUserAbortError, ClientClosedError, InvalidParamsError } from "../errors.js";
import { ENDPOINTS, isEndpoint } from "../internal/endpoints.js";
import type { BulkInput, BulkOptions, BulkOutcome } from "./bulk-types.js";
import { rejectInSlices } from "./reject-slices.js";
import { setImmediate as yieldToLoop } from "node:timers/promises";

/** Settled calls the job's list may hold beyond twice its unsettled ones before it is compacted. */
const COMPACT_SLACK = 4_096;
/** Lines read from a synchronous input between turns of the event loop. */
const SYNC_SLICE = 1_000;

type Waiter = { resolve: (r: IteratorResult<BulkOutcome>) => void; reject: (err: unknown) => void };

export class BulkJob implements Delivery, AsyncIterableIterator<BulkOutcome> {
  readonly #engine: Engine;
  readonly #source: Iterable<BulkInput> | AsyncIterable<BulkInput>;
  #input: Iterator<BulkInput> | AsyncIterator<BulkInput> | undefined;
  readonly #max: number;
  readonly #prefix: string | undefined;
  readonly #signal: AbortSignal | undefined;
  /** Reused for every request: the engine reads it synchronously. */
  readonly #submit: SubmitOptions & { idempotencyKey?: string };
  /** Ids of the job's calls not yet settled: a repeated one is refused. */
  readonly #pending = new Set<string>();
  /** The job's calls, to release those not yet settled if the consumer leaves; settled ones are dropped now and then. */
  #calls: Call[] = [];
  /** Results not yet read: `#ready[#head…]`. */
  #ready: BulkOutcome[] = [];
  #head = 0;
  #waiters: Waiter[] = [];
  #room: (() => void) | undefined;
  #unsubscribe: (() => void)[] = [];
  #started = false;
  #inputDone = false;
  /** The consumer left or the job failed: settlements from now on are not results. */
  #stopped = false;
  #failure: unknown;
  #releasing: Promise<void> | undefined;

  constructor(
    engine: Engine,
    requests: Iterable<BulkInput> | AsyncIterable<BulkInput>,
    options: BulkOptions & { raw?: boolean } = {},
  ) {
    const max = options.maxQueued ?? 2 * engine.options.batchSize;
    if (!Number.isInteger(max) || max < 1)
      throw new InvalidParamsError(`maxQueued must be a positive integer of lines (got ${max})`, "maxQueued");
    const prefix = options.idempotencyKeyPrefix;
    if (prefix !== undefined && typeof prefix !== "string")
      throw new InvalidParamsError("idempotencyKeyPrefix must be a string", "idempotencyKeyPrefix");
    if (
      requests === null ||
      typeof requests !== "object" ||
      !(Symbol.iterator in requests || Symbol.asyncIterator in requests)
    )
      throw new InvalidParamsError("bulk requests must be an iterable or an async iterable");
    this.#engine = engine;
    this.#source = requests;
    this.#max = max;
    this.#prefix = prefix;
    this.#signal = options.signal;
    this.#submit = { raw: options.raw ?? false };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<BulkOutcome>> {
    if (!this.#started) this.#start();
    if (this.#head < this.#ready.length) {
      const value = this.#take();
      if (this.#room && this.#hasRoom()) this.#wake();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended()) return this.#finish();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The consumer leaves (`break`): reading stops and every call still waiting is released (see AutoBatcher.bulk). */
  async return(): Promise<IteratorResult<BulkOutcome>> {
    this.#ready = [];
    this.#head = 0;
    this.#stop(new ClientClosedError("the bulk job's consumer stopped reading: this request was released"));
    await this.#releasing;
    return { value: undefined, done: true };
  }

  deliver(id: string, ok: boolean, value: unknown): void {
    this.#pending.delete(id);
    if (this.#stopped) return;
    const outcome: BulkOutcome = ok ? { id, ok: true, result: value } : { id, ok: false, error: value };
    if (this.#waiters.length) this.#waiters.shift()!.resolve({ value: outcome, done: false });
    else this.#ready.push(outcome);
    if (this.#pending.size === 0 && this.#inputDone) this.#settleWaiters();
    // Settling can empty the backlog with no event (a close, a stored result): the reader looks again.
    else if (this.#room && this.#hasRoom()) this.#wake();
  }

  #start(): void {
    this.#started = true;
    const wake = () => this.#wake();
    const ev = this.#engine.events;
    this.#unsubscribe = [ev.on("flush", wake), ev.on("batchSubmitted", wake), ev.on("batchSubmitFailed", wake)];
    if (this.#signal) {
      const onAbort = () => this.#fail(new APIUserAbortError());
      if (this.#signal.aborted) onAbort();
      else {
        this.#signal.addEventListener("abort", onAbort, { once: true });
        this.#unsubscribe.push(() => this.#signal!.removeEventListener("abort", onAbort));
      }
    }
    if (!this.#stopped) void this.#read();
  }

  async #read(): Promise<void> {
    try {
      const source = this.#source;
      const async = Symbol.asyncIterator in source;
      const input = (this.#input = async ? source[Symbol.asyncIterator]() : source[Symbol.iterator]());
      for (let n = 1; ; n++) {
        while (!this.#hasRoom() && !this.#stopped) await new Promise<void>((r) => (this.#room = r));
        if (this.#stopped) return;
        const r = async ? await input.next() : (input.next() as IteratorResult<BulkInput>);
        if (this.#stopped) return;
        if (r.done) break;
        if (!this.#send(r.value)) {
          this.#closeInput();
          break;
        }
        // A long synchronous input must not hold the event loop for a whole backlog's worth of lines.
        if (!async && n % SYNC_SLICE === 0) await yieldToLoop();
      }
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#inputDone = true;
    if (this.#pending.size === 0) this.#settleWaiters();
  }

  /** Hands one request to the engine; false when the client is closed and reading must stop. */
  #send(req: BulkInput): boolean {
    const id = (req as { id?: unknown } | null)?.id;
    if (typeof id !== "string" || id === "")
      throw new InvalidParamsError(
        `each bulk request needs an id, a non-empty string (got ${JSON.stringify(id)})`,
        "id",
      );
    const endpoint = req.endpoint ?? "/v1/chat/completions";
    if (!isEndpoint(endpoint)) {
      const error = new InvalidParamsError(
        `endpoint ${JSON.stringify(endpoint)} is not one of ${ENDPOINTS.join(", ")}`,
        "endpoint",
      );
      this.#push({ id, ok: false, error });
      return true;
    }
    const before = this.#pending.size;
    // One hash lookup per request: adding an id already there leaves the size as it was.
    if (this.#pending.add(id).size === before)
      throw new InvalidParamsError(`bulk request id ${JSON.stringify(id)} is already in this job, unanswered`, "id");
    if (this.#prefix !== undefined) this.#submit.idempotencyKey = this.#prefix + id;
    const call = this.#engine.deliver(endpoint, req.params, this.#submit, this, id);
    if (call instanceof ClientClosedError) {
      this.#pending.delete(id);
      this.#failure = new ClientClosedError("the client was closed before the bulk job's input was read whole");
      return false;
    }
    if (call instanceof Error) {
      this.#pending.delete(id);
      this.#push({ id, ok: false, error: call });
    } else if (call.settled) this.#pending.delete(id);
    else if (this.#calls.push(call) >= 2 * this.#pending.size + COMPACT_SLACK)
      this.#calls = this.#calls.filter((c) => !c.settled);
    return true;
  }

  #push(outcome: BulkOutcome): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: outcome, done: false });
    else this.#ready.push(outcome);
  }

  #take(): BulkOutcome {
    const value = this.#ready[this.#head]!;
    this.#ready[this.#head++] = undefined as never;
    // Drop the read front now and then, so a long job's queue does not keep every result it ever held.
    if (this.#head === this.#ready.length) {
      this.#ready.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#ready.length) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
    return value;
  }

  #hasRoom(): boolean {
    return this.#ready.length - this.#head + this.#engine.backlog < this.#max;
  }

  /** Deferred: the engine counts a batch as submitting only just after it announces the flush. */
  #wake(): void {
    const room = this.#room;
    this.#room = undefined;
    if (room) setImmediate(room);
  }

  #ended(): boolean {
    return this.#stopped || (this.#inputDone && this.#pending.size === 0);
  }

  /** The end, once every result has been read: done, or the failure that ended the job early. */
  #finish(): Promise<IteratorResult<BulkOutcome>> {
    this.#cleanUp();
    if (this.#failure === undefined) return Promise.resolve({ value: undefined, done: true });
    const failure = this.#failure;
    this.#failure = undefined;
    this.#stopped = true;
    return Promise.reject(failure);
  }

  /** Answers every waiting `next()` once nothing more can come. */
  #settleWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) this.#finish().then(w.resolve, w.reject);
  }

  /** The job cannot go on (a repeated id, the input threw, the signal aborted): release what waits, then throw. */
  #fail(err: unknown): void {
    if (this.#stopped) return;
    this.#failure = err;
    this.#stop(
      err instanceof APIUserAbortError ? err : new ClientClosedError("the bulk job failed: this request was released"),
    );
  }

  #stop(reason: Error): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cleanUp();
    this.#wake();
    this.#closeInput();
    const calls = this.#calls;
    this.#calls = [];
    this.#pending.clear();
    this.#releasing = rejectInSlices(
      calls,
      () => reason,
      (call, error) => this.#engine.release(call, error),
    );
    this.#settleWaiters();
  }

  /** Leaves the input's own resources (a file stream) to its iterator's return(); its errors are no longer ours. */
  #closeInput(): void {
    try {
      const closing = this.#input?.return?.();
      if (closing instanceof Promise) closing.catch(() => undefined);
    } catch {
      // Same: the job is over.
    }
  }

  #cleanUp(): void {
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
  }
}
