// One scheduler for every running batch: a single tick every `pollIntervalMs` reads each batch's status and the new
// lines of its files, through the shared p-queue that caps concurrent HTTP work. No timer per call or per batch; the
// tick exists only while some batch has callers waiting.
import type PQueue from "p-queue";
import type { Batch } from "./batch.js";
import type { Clock } from "../internal/clock.js";
import { APIError, NotFoundError } from "../errors.js";
import type { Transport } from "../internal/transport.js";
import { readNewLines, type FileCursor, type ReadStats } from "./results.js";
import { type BatchEnvelope, batchSchema, TERMINAL_STATUSES } from "../internal/schemas.js";

/** Consecutive polls (each with its full retry budget) that may fail before a batch's calls are given up on: a poll
 *  fails when the batch's status cannot be read, or when a finished batch's files cannot be. */
const MAX_FAILED_POLLS = 3;
/** Passes over a terminal batch's files while the server still says X-Incomplete: true. */
const MAX_DRAIN_PASSES = 5;
/** Re-reads within one poll after a stream cut mid-file, each resuming at the cursor. */
const MAX_RESUMES = 3;

export interface TrackerSettings {
  pollIntervalMs: number;
  /** ms after creation after which a non-terminal batch is given up on; undefined: never. */
  deadlineMs: number | undefined;
}

export class Tracker {
  readonly #batches = new Set<Batch>();
  readonly #busy = new Set<Batch>();
  readonly #failedPolls = new Map<Batch, number>();
  readonly #queue: PQueue;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #settings: TrackerSettings;
  readonly #signal: AbortSignal;
  #timer: unknown;
  /** Content downloads, for benchmarks and the summary. */
  readonly reads: ReadStats = { requests: 0, bytes: 0, lines: 0 };

  constructor(queue: PQueue, transport: Transport, clock: Clock, settings: TrackerSettings, signal: AbortSignal) {
    this.#queue = queue;
    this.#transport = transport;
    this.#clock = clock;
    this.#settings = settings;
    this.#signal = signal;
  }

  get running(): number {
    return this.#batches.size;
  }

  get batches(): ReadonlySet<Batch> {
    return this.#batches;
  }

  add(batch: Batch): void {
    this.#batches.add(batch);
    this.#arm();
  }

  /** Stops tracking everything (close). Callers are settled by whoever calls this. */
  stop(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#batches.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#batches.size === 0 || this.#signal.aborted) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#tick();
      this.#arm();
    }, this.#settings.pollIntervalMs);
  }

  #tick(): void {
    for (const batch of this.#batches) {
      if (this.#busy.has(batch)) continue;
      this.#busy.add(batch);
      void this.#queue
        .add(() => this.#poll(batch), { signal: this.#signal })
        .catch(() => undefined)
        .finally(() => {
          this.#busy.delete(batch);
          if (!batch.done) return;
          this.#batches.delete(batch);
          // The last batch is done: no tick may outlive it and hold the process open.
          if (this.#batches.size === 0) {
            this.#clock.clearTimeout(this.#timer);
            this.#timer = undefined;
          }
        });
    }
  }

  /**
   * Finishes batches whose callers all have their results but whose final status was not read yet (close()
   * waits for calls, not for that read), so each still reports batchDone with its final status.
   */
  async finishSettled(): Promise<void> {
    await this.#queue.onIdle();
    const pending = [...this.#batches].filter((b) => b.unsettled === 0 && !b.done);
    await Promise.allSettled(pending.map((b) => this.#queue.add(() => this.#poll(b), { signal: this.#signal })));
    for (const b of pending) b.finish("");
  }

  async #poll(batch: Batch): Promise<void> {
    let envelope: BatchEnvelope;
    try {
      envelope = await this.#transport.json(
        { method: "GET", path: `/batches/${encodeURIComponent(batch.id!)}`, signal: this.#signal },
        batchSchema,
      );
    } catch (err) {
      if (this.#signal.aborted) return;
      if (err instanceof NotFoundError) return this.#giveUp(batch, "the batch no longer exists upstream (404)");
      return this.#pollFailed(batch, `its status could not be read (${(err as Error).message})`);
    }
    if (batch.apply(envelope)) batch.progress();
    // Every caller has its result: this read only learns the final status for the batchDone event.
    if (batch.unsettled === 0) return batch.finish("");
    const terminal = TERMINAL_STATUSES.has(batch.status);
    if (!terminal) {
      await this.#readRunning(batch);
      this.#failedPolls.delete(batch);
      const deadline = this.#settings.deadlineMs;
      if (batch.unsettled > 0 && deadline !== undefined && this.#clock.Date.now() - batch.createdAt > deadline) {
        this.#giveUp(batch, "it is still not finished long after its completion window");
      }
      return;
    }
    try {
      await this.#drain(batch);
      if (batch.unsettled > 0 && (batch.output?.next || batch.error?.next)) {
        // Doubleword's positions are mostly, not always, stable: one full re-read finds lines that moved.
        for (const cursor of [batch.output, batch.error]) if (cursor) cursor.next = 0;
        await this.#drain(batch);
      }
    } catch (err) {
      // The batch is billed and its results exist: keep it and try again next tick rather than lose them.
      if (this.#signal.aborted) return;
      return this.#pollFailed(batch, `its result files could not be read (${(err as Error).message})`);
    }
    batch.finish("no result line for this call");
    this.#failedPolls.delete(batch);
  }

  /** While running, reads only files the counts say have grown (Doubleword appends in completion order). */
  async #readRunning(batch: Batch): Promise<void> {
    if (batch.output && batch.output.next < batch.counts.completed) await this.#read(batch, batch.output, false);
    if (batch.error && batch.error.next < batch.counts.failed) await this.#read(batch, batch.error, false);
  }

  async #drain(batch: Batch): Promise<void> {
    for (const cursor of [batch.output, batch.error]) {
      if (!cursor) continue;
      for (let pass = 0; pass < MAX_DRAIN_PASSES && batch.unsettled > 0; pass++) {
        const more = await this.#read(batch, cursor, true);
        if (!more) break;
      }
    }
  }

  /**
   * Reads new lines, resuming at the cursor after a cut. Returns whether the server says more may follow. While
   * running, a failure just waits for the next tick (older servers 404 a file with no lines yet); once terminal,
   * it throws after the resumes are spent.
   */
  async #read(batch: Batch, cursor: FileCursor, terminal: boolean): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await readNewLines(this.#transport, cursor, batch.onLine, this.reads, this.#signal);
        return out.incomplete === true && (out.lines > 0 || !terminal);
      } catch (err) {
        if (this.#signal.aborted || (!terminal && err instanceof APIError && err.status !== undefined)) return false;
        if (attempt >= MAX_RESUMES) {
          if (terminal) throw err;
          return false;
        }
      }
    }
  }

  /** Counts consecutive failed polls (status unreadable, or a finished batch's files unreadable); gives up at the limit. */
  #pollFailed(batch: Batch, why: string): void {
    const failures = (this.#failedPolls.get(batch) ?? 0) + 1;
    this.#failedPolls.set(batch, failures);
    if (failures >= MAX_FAILED_POLLS) this.#giveUp(batch, why);
  }

  #giveUp(batch: Batch, why: string): void {
    batch.finish(why);
    this.#failedPolls.delete(batch);
  }
}
