// One batch, the sole owner of its state: its calls by custom_id, status, counts, file cursors and errors. Submit
// (submit.ts) → poll: what a look at the batch means (status → new lines → terminal drain → finish) is decided here;
// the tracker only decides when to look. Every change goes through a method below, which tells the recorder.
import { randomBytes } from "node:crypto";
import { settle, type Call, type SettleSink } from "./call.js";
import type { Endpoint } from "../internal/endpoints.js";
import { APIConnectionError, AutoBatchError, BatchFailedError, NotFoundError, ResultParseError } from "../errors.js";
import type { BatchCounts } from "../events.js";
import type { Clock } from "../internal/clock.js";
import type { Transport } from "../internal/transport.js";
import type { FileCursor, ReadStats } from "./results.js";
import { ResultFiles } from "./result-files.js";
import { batchSchema, TERMINAL_STATUSES, type BatchEnvelope } from "../internal/schemas.js";
import { cancelBatch, createBatch, findBatch, submitError, uploadFile, type CreateSettings } from "./submit.js";
import { lineOutcome, parseLine } from "./line-result.js";
import type { BatchRecorder } from "./recorder.js";

/** Consecutive polls (each with its full retry budget) that may fail before a batch's calls are given up on: a poll
 *  fails when the batch's status cannot be read, or when a finished batch's files cannot be. */
const MAX_FAILED_POLLS = 3;

export interface BatchSettings extends CreateSettings {
  /** ms after creation after which a non-terminal batch is given up on; undefined: never. */
  deadlineMs: number | undefined;
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

/** What every batch of one engine shares. */
export interface BatchContext {
  transport: Transport;
  sink: SettleSink;
  clock: Clock;
  settings: BatchSettings;
  /** Content downloads of every batch, for benchmarks and the summary. */
  reads: ReadStats;
  recorder?: BatchRecorder;
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
  readonly bytes: number;
  readonly #ctx: BatchContext;
  readonly #calls = new Map<string, Call>();
  /** Calls whose line failed transiently and went into a later batch: their lines here are ignored. */
  readonly #retriedIds = new Set<string>();
  readonly #size: number;
  #id: string | undefined;
  #inputFileId: string | undefined;
  #status = "submitting";
  #counts: BatchCounts = { total: 0, completed: 0, failed: 0 };
  readonly #files: ResultFiles;
  #createdAt = 0;
  #batchErrors: string[] = [];
  #unsettled: number;
  #done = false;
  /** The provider 404s the batch: it is gone, as if ended. */
  #gone = false;
  /** Lines whose result was not read yet, tracked only for a recorder that keeps results. */
  readonly #unread = new Set<string>();
  /** custom_ids of a resumed batch, whose lines have no call here. */
  #known: Set<string> | undefined;
  #failedPolls = 0;
  #succeeded = 0;
  #failed = 0;
  /** Aborted when every caller left before the batch was created: its upload/create retries stop. */
  readonly #nobodyWaits = new AbortController();
  /** The JSONL file until it is uploaded. */
  #parts: Buffer[] | undefined;

  constructor(input: BatchInput, ctx: BatchContext) {
    this.key = input.key ?? randomBytes(9).toString("base64url");
    this.endpoint = input.endpoint;
    this.model = input.model;
    this.bytes = input.bytes;
    this.#parts = input.parts;
    this.#ctx = ctx;
    this.#files = new ResultFiles({
      transport: ctx.transport,
      reads: ctx.reads,
      onLine: this.onLine,
      moved: (file, next) => ctx.recorder?.cursor(this, file, next),
    });
    for (const c of input.calls) {
      this.#calls.set(c.customId, c);
      c.owner = this;
      if (ctx.recorder?.keepsResults) this.#unread.add(c.customId);
    }
    this.#unsettled = this.#size = input.calls.length;
  }

  /** A batch recorded by an earlier process, tracked from where it was left: no call waits on it here. */
  static resume(r: ResumedBatch, ctx: BatchContext): Batch {
    const b = new Batch({ key: r.key, endpoint: r.endpoint, model: r.model, calls: [], parts: [], bytes: 0 }, ctx);
    b.#parts = undefined;
    b.#id = r.id;
    b.#inputFileId = r.inputFileId;
    b.#status = r.status;
    b.#counts = { ...r.counts };
    b.#batchErrors = r.batchErrors ?? [];
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
    const { transport, settings } = this.#ctx;
    try {
      const found = await findBatch(transport, this.key, stop);
      const upstreamFile = found?.input_file_id;
      const fileId = typeof upstreamFile === "string" ? upstreamFile : this.#inputFileId;
      if (found) this.#created(found, fileId ?? "");
      else if (fileId)
        this.#created(await createBatch(transport, this.key, this.endpoint, fileId, settings, stop), fileId);
      else {
        this.#gone = true;
        this.finish("it was never created upstream");
        return false;
      }
      return true;
    } catch (err) {
      this.#ctx.sink.events.emit("warning", {
        message: `could not resume batch ${this.key} (will try again later): ${(err as Error).message}`,
      });
      return false;
    }
  }

  get id(): string | undefined {
    return this.#id;
  }
  get inputFileId(): string | undefined {
    return this.#inputFileId;
  }
  get status(): string {
    return this.#status;
  }
  get counts(): Readonly<BatchCounts> {
    return this.#counts;
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
  /** Errors the provider attached to the batch (e.g. validation failures), for the final message. */
  get batchErrors(): readonly string[] {
    return this.#batchErrors;
  }
  /** The provider ended the batch (a terminal status) or no longer has it; false while it may still run upstream. */
  get ended(): boolean {
    return this.#gone || TERMINAL_STATUSES.has(this.#status);
  }
  /** Lines whose result was not read yet (only counted for a recorder that keeps results). */
  get unread(): number {
    return this.#unread.size;
  }
  /** The calls of its file, in order (for the recorder's intent). */
  calls(): IterableIterator<Call> {
    return this.#calls.values();
  }
  /** finish() ran: every call is settled and batchDone was emitted. */
  get done(): boolean {
    return this.#done;
  }
  get size(): number {
    return this.#size;
  }
  /** Calls of this batch still waiting for a result (released callers excluded). */
  get unsettled(): number {
    return this.#unsettled;
  }

  /** Uploads the file and creates the batch. On failure every call is rejected with the reason. */
  async submit(stop: AbortSignal): Promise<boolean> {
    const { transport, settings } = this.#ctx;
    const signal = AbortSignal.any([stop, this.#nobodyWaits.signal]);
    let creating = false;
    try {
      let inputFileId: string;
      try {
        await this.#ctx.recorder?.intent?.(this);
        inputFileId = await uploadFile(transport, this.key, this.#parts ?? [], this.bytes, signal);
      } finally {
        // Kept for retries until here; a waiting call never needs its line again.
        this.#parts = undefined;
      }
      this.#inputFileId = inputFileId;
      this.#ctx.recorder?.uploaded?.(this);
      creating = true;
      const created = await createBatch(transport, this.key, this.endpoint, inputFileId, settings, signal);
      this.#created(created, inputFileId);
      return true;
    } catch (err) {
      const reason = err instanceof AutoBatchError ? err : new APIConnectionError(String(err));
      this.#ctx.sink.events.emit("batchSubmitFailed", {
        endpoint: this.endpoint,
        model: this.model,
        calls: this.#size,
        message: reason.message,
      });
      this.#ctx.recorder?.submitFailed(this, reason);
      for (const c of this.#calls.values()) this.#settle(c, false, submitError(reason, c.customId));
      // Every caller left while the create was in flight: the provider may have made the batch all the same.
      if (creating && this.#nobodyWaits.signal.aborted && !stop.aborted) void this.cancelUpstream(stop);
      return false;
    }
  }

  #created(created: BatchEnvelope, inputFileId: string): void {
    this.#id = created.id;
    this.#inputFileId = inputFileId;
    this.#createdAt = this.#ctx.clock.Date.now();
    for (const c of this.#calls.values()) c.batchId = created.id;
    this.#ctx.recorder?.submitted(this);
    this.#apply(created);
    this.#ctx.sink.events.emit("batchSubmitted", {
      batchId: created.id,
      inputFileId,
      endpoint: this.endpoint,
      model: this.model,
      calls: this.#size,
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
      const id = this.#id ?? (await findBatch(transport, this.key, signal))?.id;
      if (id) await cancelBatch(transport, id, signal);
    } catch (err) {
      this.#ctx.sink.events.emit("warning", {
        batchId: this.#id,
        message: `could not cancel batch upstream: ${(err as Error).message}`,
      });
    }
  }

  /**
   * One look at a created batch: reads its status; while it runs, the lines its counts say are new, and gives up
   * past the deadline; once terminal, drains both files and finishes. A failed look counts toward giving up.
   */
  async poll(signal: AbortSignal): Promise<void> {
    if (this.#done) return;
    let envelope: BatchEnvelope;
    try {
      envelope = await this.#ctx.transport.json(
        { method: "GET", path: `/batches/${encodeURIComponent(this.#id!)}`, signal },
        batchSchema,
      );
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof NotFoundError) {
        this.#gone = true;
        return this.finish("the batch no longer exists upstream (404)");
      }
      return this.#pollFailed(`its status could not be read (${(err as Error).message})`);
    }
    if (this.#apply(envelope)) this.#progress();
    // Every caller has its result (and every line, when results are kept): this read only learns the final status.
    if (!this.#wanted()) return this.finish("");
    if (!TERMINAL_STATUSES.has(this.#status)) {
      await this.#files.readRunning(this.#counts, signal);
      this.#failedPolls = 0;
      const deadline = this.#ctx.settings.deadlineMs;
      if (this.#wanted() && deadline !== undefined && this.#ctx.clock.Date.now() - this.#createdAt > deadline)
        this.finish("it is still not finished long after its completion window");
      return;
    }
    try {
      const waiting = () => this.#wanted();
      await this.#files.drain(waiting, signal);
      // Doubleword's positions are mostly, not always, stable: one full re-read finds lines that moved.
      if (waiting() && this.#files.rewind()) await this.#files.drain(waiting, signal);
    } catch (err) {
      // The batch is billed and its results exist: keep it and try again next tick rather than lose them.
      if (signal.aborted) return;
      return this.#pollFailed(`its result files could not be read (${(err as Error).message})`);
    }
    this.finish("no result line for this call");
  }

  /** Some caller still waits here, or some line's result is still to be kept. */
  #wanted(): boolean {
    return this.#unsettled > 0 || this.#unread.size > 0;
  }

  /** Takes in a batch object read from the provider. Returns true when status or counts changed. */
  #apply(b: BatchEnvelope): boolean {
    const counts = {
      total: b.request_counts?.total ?? 0,
      completed: b.request_counts?.completed ?? 0,
      failed: b.request_counts?.failed ?? 0,
    };
    const changed =
      b.status !== this.#status ||
      counts.completed !== this.#counts.completed ||
      counts.failed !== this.#counts.failed ||
      counts.total !== this.#counts.total;
    this.#status = b.status;
    this.#counts = counts;
    const files = [this.#files.track("output", b.output_file_id), this.#files.track("error", b.error_file_id)];
    const errs = b.errors?.data ?? [];
    if (errs.length)
      this.#batchErrors = errs.map(
        (e) => `${e.code ?? "error"}${e.line != null ? ` (line ${e.line})` : ""}: ${e.message ?? ""}`,
      );
    if (changed || files.includes(true) || errs.length) this.#ctx.recorder?.progress(this);
    return changed;
  }

  #progress(): void {
    this.#ctx.sink.events.emit("batchProgress", {
      batchId: this.#id!,
      status: this.#status,
      counts: this.#counts,
      settled: this.#size - this.#unsettled,
      calls: this.#size,
    });
  }

  /** Counts consecutive failed polls (status unreadable, or a finished batch's files unreadable); gives up at the limit. */
  #pollFailed(why: string): void {
    if (++this.#failedPolls >= MAX_FAILED_POLLS) this.finish(why);
  }

  /** Settles the call a result line belongs to. A duplicate line is ignored; a line for no call of ours is reported. */
  readonly onLine = (raw: string): void => {
    const parsed = parseLine(raw);
    if ("why" in parsed) {
      this.#unreadable(raw, parsed.why, parsed.customId);
      return;
    }
    const customId = parsed.line.custom_id;
    if (this.#unread.delete(customId)) this.#ctx.recorder?.result?.(this, customId, raw);
    const call = this.#calls.get(customId);
    if (!call) {
      if (this.#retriedIds.has(customId) || this.#known?.has(customId)) return;
      this.#ctx.sink.events.emit("warning", {
        batchId: this.#id,
        message: `result line for unknown custom_id ${JSON.stringify(customId.slice(0, 80))} ignored`,
      });
      return;
    }
    if (call.settled) return;
    const out = lineOutcome(call, parsed.line, {
      endpoint: this.endpoint,
      batchId: this.#id,
      batchStatus: this.#status,
    });
    if (out.transient && this.#ctx.sink.retryable(call)) this.#retry(call, out.value as AutoBatchError);
    else this.#settle(call, out.ok, out.value);
  };

  /** Hands a call whose line failed transiently back to the engine, which sends its line again in a later batch. */
  #retry(call: Call, reason: AutoBatchError): void {
    this.#calls.delete(call.customId);
    this.#retriedIds.add(call.customId);
    this.#unsettled--;
    call.owner = undefined;
    this.#ctx.recorder?.retried(this, call.customId);
    this.#ctx.sink.retry(call);
    const status = (reason as { status?: number }).status;
    this.#ctx.sink.events.emit("callRetried", {
      customId: call.customId,
      batchId: this.#id!,
      retry: call.retries,
      ...(status !== undefined && { status }),
      message: reason.message,
    });
  }

  /** A line we cannot read fails only its own call, when the custom_id can still be recovered from the text. */
  #unreadable(text: string, why: string, customId: string | undefined): void {
    const call = this.#calls.get(customId ?? "");
    const preview = this.#ctx.transport.quote(text.slice(0, 200));
    if (call) {
      if (call.settled) return;
      this.#settle(
        call,
        false,
        new ResultParseError(`result line for this call ${why}: ${preview}`, {
          customId: call.customId,
          batchId: this.#id,
        }),
      );
    } else {
      this.#ctx.sink.events.emit("warning", {
        batchId: this.#id,
        message: `unattributable result line ${why}: ${preview}`,
      });
    }
  }

  /** Rejects every call still waiting, naming the batch, its status and why. */
  finish(why: string): void {
    if (this.#done) return;
    this.#done = true;
    const detail = this.#batchErrors.length ? `; provider errors: ${this.#batchErrors.slice(0, 3).join("; ")}` : "";
    for (const call of this.#calls.values()) {
      if (call.settled) continue;
      this.#settle(
        call,
        false,
        new BatchFailedError(`Batch ${this.#id} ended with status "${this.#status}": ${why}${detail}`, {
          customId: call.customId,
          batchId: this.#id,
          batchStatus: this.#status,
        }),
      );
    }
    this.#ctx.recorder?.finished(this, why);
    this.#ctx.sink.events.emit("batchDone", {
      batchId: this.#id!,
      status: this.#status,
      counts: this.#counts,
      succeeded: this.#succeeded,
      failed: this.#failed,
      ...(this.#retriedIds.size > 0 && { retried: this.#retriedIds.size }),
      calls: this.#size,
    });
  }

  /** Releases one caller (its signal aborted) without stopping the batch. */
  release(call: Call, reason: unknown): void {
    this.#settle(call, false, reason);
  }

  /** Releases all waiting calls with `reason` (used by close with cancel). */
  abandon(reason: (call: Call) => unknown): void {
    for (const call of this.#calls.values()) if (!call.settled) this.#settle(call, false, reason(call));
  }

  #settle(call: Call, ok: boolean, value: unknown): void {
    if (!settle(call, this.#ctx.sink, ok, value)) return;
    if (--this.#unsettled === 0 && !this.#id) this.#nobodyWaits.abort();
    if (ok) this.#succeeded++;
    else this.#failed++;
    this.#ctx.recorder?.settled(this, call.customId, ok);
  }
}
