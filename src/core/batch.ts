// One batch, the sole owner of its state: its submission, with its file and its ids (batch-submit.ts), its calls
// (batch-calls.ts), what the provider says of it (batch-status.ts), its file cursors (result-files.ts), its polls and
// its end (batch-poll.ts). Submit (batch-submit.ts, its requests in submit.ts) → poll: what a look at the batch means
// (status → new lines → terminal drain → finish, give up, or hand the calls on) is decided in batch-poll.ts; the
// tracker only decides when to look. Every change goes through this class and the parts it owns, whose hooks back to
// it tell the recorder.
import { randomBytes } from "node:crypto";
import type { Call, SettleSink } from "./call.js";
import { BatchCalls } from "./batch-calls.js";
import type { Endpoint } from "../internal/endpoints.js";
import type { BatchCounts } from "../events.js";
import type { Clock } from "../internal/clock.js";
import type { BatchHttp } from "./slots.js";
import type { FileCursor, ReadStats } from "./results.js";
import { ResultFiles } from "./result-files.js";
import type { BatchEnvelope } from "../internal/schemas.js";
import { BatchStatus } from "./batch-status.js";
import { BatchPoll } from "./batch-poll.js";
import { BatchSubmit } from "./batch-submit.js";
import type { CreateSettings } from "./submit.js";
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
  readonly #ctx: BatchContext;
  readonly #calls: BatchCalls;
  readonly #state = new BatchStatus();
  readonly #files: ResultFiles;
  readonly #poll: BatchPoll;
  readonly #submit: BatchSubmit;
  /** Files that handed over a line already used: their lines moved, and a re-read may find more. */
  readonly #repeated = new Set<ResultFile>();
  /** Lines whose result was not read yet, tracked only for a recorder that keeps results. */
  readonly #unread = new Set<string>();
  /** custom_ids of a resumed batch, whose lines have no call here. */
  #known: Set<string> | undefined;

  constructor(input: BatchInput, ctx: BatchContext) {
    this.key = input.key ?? randomBytes(9).toString("base64url");
    this.endpoint = input.endpoint;
    this.model = input.model;
    this.#ctx = ctx;
    this.#calls = new BatchCalls(input.calls, this, {
      sink: ctx.sink,
      line: () => ({ endpoint: this.endpoint, batchId: this.#submit.id, batchStatus: this.#state.status }),
      quote: (text) => ctx.transport.quote(text),
      warn: this.#warn,
      settled: (customId, ok) => {
        if (this.#calls.unsettled === 0) this.#submit.nobodyWaits();
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
      id: () => this.#submit.id,
      createdAt: () => this.#submit.createdAt,
      unread: () => this.#unread.size,
      progress: () => ctx.recorder?.progress(this),
      refused: (calls) => ctx.sink.overCapacity(this, calls),
      finished: (why) => ctx.recorder?.finished(this, why),
      cancel: (stop) => this.cancelUpstream(stop),
    });
    this.#submit = new BatchSubmit(input.parts, input.bytes, {
      transport: ctx.transport,
      clock: ctx.clock,
      settings: ctx.settings,
      sink: ctx.sink,
      key: this.key,
      endpoint: this.endpoint,
      model: this.model,
      calls: this.#calls,
      poll: this.#poll,
      warn: this.#warn,
      intent: () => ctx.recorder?.intent?.(this),
      withdrawn: (calls) => ctx.recorder?.withdrawn?.(this, calls),
      kept: (calls) => {
        this.#unread.clear();
        for (const c of calls) this.#unread.add(c.customId);
      },
      uploaded: () => ctx.recorder?.uploaded?.(this),
      submitted: () => ctx.recorder?.submitted(this),
      failed: (reason) => ctx.recorder?.submitFailed(this, reason),
    });
  }

  /** A batch recorded by an earlier process, tracked from where it was left: no call waits on it here. */
  static resume(r: ResumedBatch, ctx: BatchContext): Batch {
    const b = new Batch({ key: r.key, endpoint: r.endpoint, model: r.model, calls: [], parts: [], bytes: 0 }, ctx);
    b.#submit.restore(r.id, r.inputFileId, r.createdAt);
    b.#state.restore(r.status, r.counts, r.batchErrors ?? []);
    b.#files.restore(r.output, r.error);
    b.#known = new Set(r.customIds);
    for (const id of r.unread) b.#unread.add(id);
    return b;
  }

  /** A resumed batch whose creation was never recorded: found upstream by its key, else created (batch-submit.ts). */
  reattach(stop: AbortSignal): Promise<boolean> {
    return this.#submit.reattach(stop);
  }

  get id(): string | undefined {
    return this.#submit.id;
  }
  /** UTF-8 bytes of its file. */
  get bytes(): number {
    return this.#submit.bytes;
  }
  /** Stopped by close while creating, so it may exist upstream without an id here. */
  get inDoubt(): boolean {
    return this.#submit.inDoubt;
  }
  get inputFileId(): string | undefined {
    return this.#submit.inputFileId;
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
    return this.#submit.createdAt;
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

  /** Uploads the file and creates the batch (batch-submit.ts). On failure every call is rejected with the reason. */
  submit(stop: AbortSignal): Promise<boolean> {
    return this.#submit.submit(stop);
  }

  /** Best effort: cancels the batch upstream, so nobody pays for results nobody waits for (batch-submit.ts). */
  cancelUpstream(signal?: AbortSignal): Promise<void> {
    return this.#submit.cancelUpstream(signal);
  }

  readonly #warn = (message: string): void => {
    this.#ctx.sink.events.emit("warning", { batchId: this.#submit.id, message });
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
