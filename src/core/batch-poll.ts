// One batch's polls and its end: what a look at a created batch means (status → new lines → terminal drain → finish,
// give up, or hand the calls on to wait for capacity), and the end itself (every waiting call rejected, batchDone).
// Owned by one Batch, private to it; it reads the batch's parts and reports every change to it through the hooks.
import type { Call, SettleSink } from "./call.js";
import type { BatchCalls } from "./batch-calls.js";
import type { BatchSettings } from "./batch.js";
import type { BatchStatus } from "./batch-status.js";
import { BatchFailedError, NotFoundError } from "../errors.js";
import type { Clock } from "../internal/clock.js";
import type { BatchHttp } from "./slots.js";
import type { ResultFile } from "./recorder.js";
import type { ResultFiles } from "./result-files.js";
import { batchSchema, type BatchEnvelope } from "../internal/schemas.js";

/** Consecutive polls (each with its full retry budget) that may fail before a batch's calls are given up on: a poll
 *  fails when the batch's status cannot be read, or when a finished batch's files cannot be. */
const MAX_FAILED_POLLS = 3;

/** What a poll needs of its batch: the engine's shared pieces, the parts the batch owns, and hooks back to it. */
export interface BatchPollHooks {
  transport: BatchHttp;
  clock: Clock;
  settings: BatchSettings;
  sink: SettleSink;
  calls: BatchCalls;
  state: BatchStatus;
  files: ResultFiles;
  /** Files that handed over a line already used: their lines moved, and a re-read may find more. */
  repeated: ReadonlySet<ResultFile>;
  id(): string | undefined;
  /** When the batch was created (client clock, ms). */
  createdAt(): number;
  /** Lines whose result is still to be kept (see BatchRecorder.keepsResults). */
  unread(): number;
  /** A status read changed the status, the counts, a file id or the batch's errors. */
  progress(): void;
  /** The batch was refused over the enqueued-token limit: these calls left it, to wait for capacity. */
  refused(calls: Call[]): void;
  /** Every call is settled, before batchDone. */
  finished(why: string): void;
  /** Cancels the batch upstream, best effort. */
  cancel(stop?: AbortSignal): Promise<void>;
}

export class BatchPoll {
  readonly #hooks: BatchPollHooks;
  #failedPolls = 0;
  /** Its calls' lines were dropped: past validation, with line retries off, nothing sends them again. */
  #linesDropped = false;
  #refused = false;
  #done = false;
  /** The provider 404s the batch: it is gone, as if ended. */
  #gone = false;

  constructor(hooks: BatchPollHooks) {
    this.#hooks = hooks;
  }

  /** Refused over the provider's enqueued-token limit: its calls went back to wait for capacity. */
  get refused(): boolean {
    return this.#refused;
  }
  /** finish() started: its calls are being rejected, then batchDone is emitted. */
  get done(): boolean {
    return this.#done;
  }
  /** The provider ended the batch (a terminal status) or no longer has it; false while it may still run upstream. */
  get ended(): boolean {
    return this.#gone || this.#hooks.state.terminal;
  }

  /**
   * One look at a created batch: reads its status; while it runs, the lines its counts say are new, and gives up
   * past the deadline; once terminal, drains both files and finishes. A failed look counts toward giving up. The
   * deadline also cuts a request of this look still in flight (a body that trickles never times out on its own).
   * `listed`: its status as a list page just gave it, instead of reading it by id.
   */
  async poll(stop: AbortSignal, listed?: BatchEnvelope): Promise<void> {
    if (this.#done) return;
    const { clock, settings, state } = this.#hooks;
    const late = new AbortController();
    const deadlineAt = settings.deadlineMs === undefined ? undefined : this.#hooks.createdAt() + settings.deadlineMs;
    const timer =
      deadlineAt === undefined
        ? undefined
        : clock.setTimeout(() => late.abort(), Math.max(0, deadlineAt - clock.Date.now()) + 1);
    try {
      await this.#look(AbortSignal.any([stop, late.signal]), stop, listed);
    } finally {
      clock.clearTimeout(timer);
      this.#hooks.sink.looked();
    }
    const past = deadlineAt !== undefined && clock.Date.now() > deadlineAt;
    if (!this.#done && this.#wanted() && (late.signal.aborted || (past && !state.terminal)))
      await this.#giveUp("it is still not finished long after its completion window", !state.terminal);
  }

  async #look(signal: AbortSignal, stop: AbortSignal, listed: BatchEnvelope | undefined): Promise<void> {
    const { transport, state, files } = this.#hooks;
    let envelope: BatchEnvelope;
    try {
      envelope =
        listed ??
        (await transport.json(
          { method: "GET", path: `/batches/${encodeURIComponent(this.#hooks.id()!)}`, signal },
          batchSchema,
        ));
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof NotFoundError) return this.gone("the batch no longer exists upstream (404)");
      return this.#pollFailed(`its status could not be read (${(err as Error).message})`, stop);
    }
    if (this.apply(envelope)) this.#progress();
    // Every caller has its result (and every line, when results are kept): this read only learns the final status.
    if (!this.#wanted()) return this.finish("");
    if (state.overCapacity) return this.#overCapacity();
    const doubted = state.doubt();
    if (!state.terminal || doubted) {
      await files.readRunning(state.counts, signal);
      this.#failedPolls = 0;
      return;
    }
    try {
      const waiting = () => this.#wanted();
      await files.drain(waiting, signal);
      // Doubleword's positions are mostly, not always, stable: a line read twice shows that lines moved, and one
      // full re-read of that file finds the ones that moved past the cursor. Other files cannot hold more.
      if (waiting() && files.rewind(this.#hooks.repeated)) await files.drain(waiting, signal);
    } catch (err) {
      // The batch is billed and its results exist: keep it and try again next tick rather than lose them.
      if (signal.aborted) return;
      return this.#pollFailed(`its result files could not be read (${(err as Error).message})`, stop);
    }
    if (state.contradicts && this.#wanted())
      return this.#giveUp("its status says completed while its counts say lines are unfinished", true, stop);
    await this.finish("no result line for this call");
  }

  /** Some caller still waits here, or some line's result is still to be kept. */
  #wanted(): boolean {
    return this.#hooks.calls.unsettled > 0 || this.#hooks.unread() > 0;
  }

  /** Takes in a batch object read from the provider. Returns true when status or counts changed. */
  apply(b: BatchEnvelope): boolean {
    const { state, files, calls, settings } = this.#hooks;
    const changed = state.apply(b);
    const tracked = [files.track("output", b.output_file_id), files.track("error", b.error_file_id)];
    if (!this.#linesDropped && !settings.lineRetries && state.validated) {
      this.#linesDropped = true;
      calls.dropLines();
    }
    if (changed || tracked.includes(true) || b.errors?.data?.length) this.#hooks.progress();
    return changed;
  }

  #progress(): void {
    const { calls, state } = this.#hooks;
    this.#hooks.sink.events.emit("batchProgress", {
      batchId: this.#hooks.id()!,
      status: state.status,
      counts: state.counts,
      settled: calls.size - calls.unsettled,
      calls: calls.size,
    });
  }

  /** Counts consecutive failed polls (status unreadable, or a finished batch's files unreadable); gives up at the limit. */
  async #pollFailed(why: string, stop: AbortSignal): Promise<void> {
    if (++this.#failedPolls >= MAX_FAILED_POLLS) await this.#giveUp(why, !this.#hooks.state.terminal, stop);
  }

  /** Rejects the calls still waiting; with `cancel`, also cancels the batch, which may still be running and billing. */
  async #giveUp(why: string, cancel: boolean, stop?: AbortSignal): Promise<void> {
    const finishing = this.finish(why);
    if (cancel && !stop?.aborted) void this.#hooks.cancel(stop);
    await finishing;
  }

  /** The provider refused the whole batch for now: every waiting call goes back, to wait for capacity. */
  async #overCapacity(): Promise<void> {
    const { calls } = this.#hooks;
    const waiting = calls.waiting();
    for (const c of waiting) calls.leave(c);
    this.#refused = true;
    // Held before finish() lets anyone else run: a call with no owner and its line still set reads as buffered, and
    // its caller leaving would take it out of the buffer of its model, with whatever call waits there.
    this.#hooks.refused(waiting);
    await this.finish("");
  }

  /** The provider does not have the batch (it 404s, or was never created): it ends as if the provider ended it. */
  gone(why: string): Promise<void> {
    this.#gone = true;
    return this.finish(why);
  }

  /** Rejects every call still waiting (in slices), naming the batch, its status and why; then emits batchDone. */
  async finish(why: string): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    const { calls, state } = this.#hooks;
    const detail = state.errors.length ? `; provider errors: ${state.errors.slice(0, 3).join("; ")}` : "";
    await calls.rejectWaiting(
      (call) =>
        new BatchFailedError(`Batch ${this.#hooks.id()} ended with status "${state.status}": ${why}${detail}`, {
          customId: call.customId,
          batchId: this.#hooks.id(),
          batchStatus: state.status,
        }),
    );
    this.#hooks.finished(why);
    this.#hooks.sink.events.emit("batchDone", {
      batchId: this.#hooks.id()!,
      status: state.status,
      counts: state.counts,
      succeeded: calls.succeeded,
      failed: calls.failed,
      ...(calls.left > 0 && { retried: calls.left }),
      calls: calls.size,
    });
  }
}
