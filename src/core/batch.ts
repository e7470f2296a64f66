// One batch, the sole owner of its state: its calls (batch-calls.ts), what the provider says of it (batch-status.ts),
// its file cursors (result-files.ts), its polls and its end (batch-poll.ts). Submit (submit.ts) → poll: what a look at
// the batch means (status → new lines → terminal drain → finish, give up, or hand the calls on) is decided in
// batch-poll.ts; the tracker only decides when to look. Every change goes through this class and the parts it owns,
// which tell the recorder.
import { randomBytes } from "node:crypto";
import type { Call, SettleSink } from "./call.js";
import { BatchCalls } from "./batch-calls.js";
import { fileOf } from "./buffer.js";
import type { Endpoint } from "../internal/endpoints.js";
import { APIConnectionError, AutoBatchError } from "../errors.js";
import type { BatchCounts } from "../events.js";
import type { Clock } from "../internal/clock.js";
import type { BatchHttp } from "./slots.js";
import type { FileCursor, ReadStats } from "./results.js";
import { ResultFiles } from "./result-files.js";
import type { BatchEnvelope } from "../internal/schemas.js";
import { BatchStatus } from "./batch-status.js";
import { BatchPoll } from "./batch-poll.js";
import {
  cancelBatch,
  createBatch,
  CreateFailed,
  lookupBatch,
  submitError,
  uploadFile,
  type CreateSettings,
} from "./submit.js";
import type { BatchRecorder, ResultFile } from "./recorder.js";
import { isTransient } from "./line-result.js";

export interface BatchSettings extends CreateSettings {
  /** ms after creation after which a non-terminal batch is given up on; undefined: never. */
  deadlineMs: number | undefined;
  /** The `lineRetries` option: with 0, lines are dropped once validation can no longer refuse the batch. */
  lineRetries: number;
}

/** What every batch of one engine shares. */
export interface BatchContext {
  transport: BatchHttp;
  sink: SettleSink;
  clock: Clock;
  settings: BatchSettings;
  /** Content downloads of every batch, for benchmarks and the summary. */
  reads: ReadStats;
  recorder?: BatchRecorder;
}

/** A batch recorded by an earlier process, as a durable store gives it back. */
export interface ResumedBatch {
  key: string;
  endpoint: Endpoint;
  model: string;
  id?: string;
  inputFileId?: string;
  status: string;
  counts: BatchCounts;
  output?: FileCursor;
  error?: FileCursor;
  batchErrors?: string[];
  createdAt: number;
  /** Every custom_id of its file. */
  customIds: string[];
  /** The custom_ids whose result line is not stored yet. */
  unread: string[];
}

export interface BatchInput {
  /** Default: a fresh random key. */
  key?: string;
  endpoint: Endpoint;
  model: string;
  calls: Call[];
  /** The JSONL file, in order. */
  parts: Buffer[];
  bytes: number;
}

export class Batch {
  readonly key: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  #bytes: number;
  readonly #ctx: BatchContext;
  readonly #calls: BatchCalls;
  #id: string | undefined;
  #inputFileId: string | undefined;
  readonly #state = new BatchStatus();
  readonly #files: ResultFiles;
  readonly #poll: BatchPoll;
  #createdAt = 0;
  /** Files that handed over a line already used: their lines moved, and a re-read may find more. */
  readonly #repeated = new Set<ResultFile>();
  /** Lines whose result was not read yet, tracked only for a recorder that keeps results. */
  readonly #unread = new Set<string>();
  /** custom_ids of a resumed batch, whose lines have no call here. */
  #known: Set<string> | undefined;
  /** Its submission was stopped by close while creating: the provider may have made it. */
  #inDoubt = false;
  /** Aborted when every caller left before the batch was created: its upload/create retries stop. */
  readonly #nobodyWaits = new AbortController();
  /** The JSONL file until it is uploaded. */
  #parts: Buffer[] | undefined;

  constructor(input: BatchInput, ctx: BatchContext) {
    this.key = input.key ?? randomBytes(9).toString("base64url");
    this.endpoint = input.endpoint;
    this.model = input.model;
    this.#bytes = input.bytes;
    this.#parts = input.parts;
    this.#ctx = ctx;
    this.#calls = new BatchCalls(input.calls, this, {
      sink: ctx.sink,
      line: () => ({ endpoint: this.endpoint, batchId: this.#id, batchStatus: this.#state.status }),
      quote: (text) => ctx.transport.quote(text),
      warn: this.#warn,
      settled: (customId, ok) => {
        // Every caller left before the batch was created: its upload/create retries stop.
        if (this.#calls.unsettled === 0 && !this.#id) this.#nobodyWaits.abort();
        ctx.recorder?.settled(this, customId, ok);
      },
      left: (customId) => ctx.recorder?.retried(this, customId),
      repeated: (file) => this.#repeated.add(file),
      read: (customId, raw, line) => {
        const known = this.#known?.has(customId) ?? false;
        if (!this.#unread.delete(customId)) return known;
        ctx.recorder?.result?.(this, customId, raw);
        // A resumed line, its caller (if any) waiting through the store: a transient failure is not its answer while
        // lines are retried. The store forgets it, so that caller (or a rerun) submits the line anew.
        if (known && ctx.settings.lineRetries > 0 && isTransient(line, this.#state.status))
          ctx.recorder?.retried(this, customId);
        return known;
      },
    });
    if (ctx.recorder?.keepsResults) for (const c of input.calls) this.#unread.add(c.customId);
    this.#files = new ResultFiles({
      transport: ctx.transport,
      reads: ctx.reads,
      onLine: (line, file) => this.#calls.onLine(line, file),
      moved: (file, next) => ctx.recorder?.cursor(this, file, next),
    });
    this.#poll = new BatchPoll({
      transport: ctx.transport,
      clock: ctx.clock,
      settings: ctx.settings,
      sink: ctx.sink,
      calls: this.#calls,
      state: this.#state,
      files: this.#files,
      repeated: this.#repeated,
      id: () => this.#id,
      createdAt: () => this.#createdAt,
      unread: () => this.#unread.size,
      progress: () => ctx.recorder?.progress(this),
      refused: (calls) => ctx.sink.overCapacity(this, calls),
      finished: (why) => ctx.recorder?.finished(this, why),
      cancel: (stop) => this.cancelUpstream(stop),
    });
  }

  /** A batch recorded by an earlier process, tracked from where it was left: no call waits on it here. */
  static resume(r: ResumedBatch, ctx: BatchContext): Batch {
    const b = new Batch({ key: r.key, endpoint: r.endpoint, model: r.model, calls: [], parts: [], bytes: 0 }, ctx);
    b.#parts = undefined;
    b.#id = r.id;
    b.#inputFileId = r.inputFileId;
    b.#state.restore(r.status, r.counts, r.batchErrors ?? []);
    b.#createdAt = r.createdAt;
    b.#files.restore(r.output, r.error);
    b.#known = new Set(r.customIds);
    for (const id of r.unread) b.#unread.add(id);
    return b;
  }

  /**
   * A resumed batch whose creation was never recorded: finds it upstream by its key, else creates it from its
   * uploaded file. Returns false when neither exists (nothing was billed; the batch is ended).
   */
  async reattach(stop: AbortSignal): Promise<boolean> {
    try {
      const found = await lookupBatch(this.#ctx, this.key, stop);
      const upstreamFile = found?.input_file_id;
      const fileId = typeof upstreamFile === "string" ? upstreamFile : this.#inputFileId;
      if (found) this.#created(found, fileId ?? "");
      else if (fileId)
        this.#created(await createBatch(this.#ctx, this.key, this.endpoint, fileId, this.#ctx.settings, stop), fileId);
      else {
        await this.#poll.gone("it was never created upstream");
        return false;
      }
      return true;
    } catch (failure) {
      const err = failure instanceof CreateFailed ? failure.reason : failure;
      this.#warn(`could not resume batch ${this.key} (will try again later): ${(err as Error).message}`);
      return false;
    }
  }

  get id(): string | undefined {
    return this.#id;
  }
  /** UTF-8 bytes of its file. */
  get bytes(): number {
    return this.#bytes;
  }
  /** Stopped by close while creating, so it may exist upstream without an id here. */
  get inDoubt(): boolean {
    return this.#inDoubt;
  }
  get inputFileId(): string | undefined {
    return this.#inputFileId;
  }
  get status(): string {
    return this.#state.status;
  }
  get counts(): Readonly<BatchCounts> {
    return this.#state.counts;
  }
  get output(): FileCursor | undefined {
    return this.#files.output;
  }
  get error(): FileCursor | undefined {
    return this.#files.error;
  }
  /** When the batch was created (client clock, ms). */
  get createdAt(): number {
    return this.#createdAt;
  }
  /** The provider's `created_at` (s), for poll by listing. */
  get listedAt(): number | undefined {
    return this.#state.createdAt;
  }
  /** Errors the provider attached to the batch (e.g. validation failures), for the final message. */
  get batchErrors(): readonly string[] {
    return this.#state.errors;
  }
  /** The provider ended the batch (a terminal status) or no longer has it; false while it may still run upstream. */
  get ended(): boolean {
    return this.#poll.ended;
  }
  /** Lines whose result was not read yet (only counted for a recorder that keeps results). */
  get unread(): number {
    return this.#unread.size;
  }
  /** The calls of its file, in order (for the recorder's intent). */
  calls(): IterableIterator<Call> {
    return this.#calls.all();
  }
  /** Refused over the provider's enqueued-token limit: its calls went back to wait for capacity. */
  get refused(): boolean {
    return this.#poll.refused;
  }
  /** finish() started: its calls are being rejected, then batchDone is emitted. */
  get done(): boolean {
    return this.#poll.done;
  }
  get size(): number {
    return this.#calls.size;
  }
  /** Calls of this batch still waiting for a result (released callers excluded). */
  get unsettled(): number {
    return this.#calls.unsettled;
  }

  /** Uploads the file and creates the batch. On failure every call is rejected with the reason. */
  async submit(stop: AbortSignal): Promise<boolean> {
    const { settings } = this.#ctx;
    const signal = AbortSignal.any([stop, this.#nobodyWaits.signal]);
    let creating = false;
    try {
      let inputFileId: string;
      try {
        const taken = await this.#ctx.recorder?.intent?.(this);
        if (taken?.size && !this.#withdraw(taken)) return false;
        inputFileId = await uploadFile(this.#ctx, this.key, this.#parts ?? [], this.bytes, signal, this.#warn);
      } finally {
        // Kept for retries until here; each call keeps a view of its own line while it may be sent again.
        this.#parts = undefined;
      }
      this.#inputFileId = inputFileId;
      this.#ctx.recorder?.uploaded?.(this);
      creating = true;
      const created = await createBatch(this.#ctx, this.key, this.endpoint, inputFileId, settings, signal);
      this.#created(created, inputFileId);
      return true;
    } catch (failure) {
      const err = failure instanceof CreateFailed ? failure.reason : failure;
      const reason = err instanceof AutoBatchError ? err : new APIConnectionError(String(err));
      this.#ctx.recorder?.submitFailed(this, reason);
      await this.#calls.rejectWaiting((c) => submitError(reason, c.customId));
      // Once every call is rejected, as it says; the engine stops counting the batch as submitting in the same turn.
      this.#ctx.sink.events.emit("batchSubmitFailed", {
        endpoint: this.endpoint,
        model: this.model,
        calls: this.#calls.size,
        message: reason.message,
      });
      // The provider may have made the batch all the same (every caller left while the create was in flight, or it
      // could not be looked up): find it and cancel it, so nobody pays for it.
      const maybe = failure instanceof CreateFailed && failure.maybeCreated;
      if (creating && (maybe || this.#nobodyWaits.signal.aborted) && !stop.aborted) void this.cancelUpstream(stop);
      // Closed while the create was in flight or in doubt: the engine decides whether to look for it and cancel it.
      this.#inDoubt = creating && stop.aborted;
      return false;
    }
  }

  /**
   * Takes the lines `taken` out of the file before upload (see BatchRecorder.intent), and with them the lines of calls
   * released meanwhile; false when no line is left (nothing is uploaded, the batch ends).
   */
  #withdraw(taken: ReadonlySet<string>): boolean {
    const gone = this.#calls.withdraw(taken);
    const rest = [...this.#calls.all()].filter((c) => !c.settled);
    this.#unread.clear();
    for (const c of rest) this.#unread.add(c.customId);
    this.#parts = rest.length ? [fileOf(rest)] : [];
    this.#bytes = this.#parts[0]?.length ?? 0;
    this.#ctx.recorder?.withdrawn?.(this, gone);
    if (rest.length === 0) this.#ctx.recorder?.submitFailed(this, new Error("every line runs elsewhere"));
    return rest.length > 0;
  }

  #created(created: BatchEnvelope, inputFileId: string): void {
    this.#id = created.id;
    this.#inputFileId = inputFileId;
    this.#createdAt = this.#ctx.clock.Date.now();
    const { deadlineMs } = this.#ctx.settings;
    this.#calls.created(created.id, deadlineMs === undefined ? undefined : this.#createdAt + deadlineMs);
    this.#ctx.recorder?.submitted(this);
    this.#poll.apply(created);
    this.#ctx.sink.events.emit("batchSubmitted", {
      batchId: created.id,
      inputFileId,
      endpoint: this.endpoint,
      model: this.model,
      calls: this.#calls.size,
      bytes: this.bytes,
    });
  }

  /**
   * Best effort, so nobody pays for results nobody waits for: cancels the batch upstream (found by its key if its
   * creation's answer never arrived). A failure leaves it to finish upstream; its callers are already released.
   */
  async cancelUpstream(signal?: AbortSignal): Promise<void> {
    const { transport } = this.#ctx;
    try {
      const find = () => lookupBatch(this.#ctx, this.key, signal);
      const id = this.#id ?? (await transport.withRetry({ method: "GET", path: "/batches", signal }, find))?.id;
      if (id) await cancelBatch(transport, id, signal);
    } catch (err) {
      this.#warn(`could not cancel batch upstream: ${(err as Error).message}`);
    }
  }

  readonly #warn = (message: string): void => {
    this.#ctx.sink.events.emit("warning", { batchId: this.#id, message });
  };

  /** One look at a created batch (batch-poll.ts); `listed`: its status as a list page just gave it. */
  poll(stop: AbortSignal, listed?: BatchEnvelope): Promise<void> {
    return this.#poll.poll(stop, listed);
  }

  /** Rejects every call still waiting (in slices), naming the batch, its status and why; then emits batchDone. */
  finish(why: string): Promise<void> {
    return this.#poll.finish(why);
  }

  /** Releases one caller (its signal aborted) without stopping the batch. */
  release(call: Call, reason: unknown): void {
    this.#calls.settle(call, false, reason);
  }

  /** Releases all waiting calls with `reason`, in slices (used by close with cancel). */
  abandon(reason: (call: Call) => unknown): Promise<void> {
    return this.#calls.rejectWaiting(reason);
  }
}
