// One scheduler for every running batch: a single tick every `pollIntervalMs` has each batch that is not already
// being looked at poll itself (batch.ts decides what a poll means), through the shared p-queue that caps concurrent
// HTTP work. No timer per call or per batch; the tick exists only while some batch is tracked.
import type PQueue from "p-queue";
import type { Batch } from "./batch.js";
import type { Clock } from "../internal/clock.js";

export class Tracker {
  readonly #batches = new Set<Batch>();
  readonly #busy = new Set<Batch>();
  readonly #queue: PQueue;
  readonly #clock: Clock;
  readonly #pollIntervalMs: number;
  readonly #signal: AbortSignal;
  #timer: unknown;

  constructor(queue: PQueue, clock: Clock, pollIntervalMs: number, signal: AbortSignal) {
    this.#queue = queue;
    this.#clock = clock;
    this.#pollIntervalMs = pollIntervalMs;
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
    }, this.#pollIntervalMs);
  }

  #tick(): void {
    for (const batch of this.#batches) {
      if (this.#busy.has(batch)) continue;
      this.#busy.add(batch);
      void this.#queue
        .add(() => batch.poll(this.#signal), { signal: this.#signal })
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
    await Promise.allSettled(pending.map((b) => this.#queue.add(() => b.poll(this.#signal), { signal: this.#signal })));
    for (const b of pending) b.finish("");
  }
}
