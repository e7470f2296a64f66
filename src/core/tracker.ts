// One scheduler for every running batch: a single tick every `pollIntervalMs` reads the statuses of the batches not
// already being looked at from the batch list (status-pages.ts: a request per page of batches, not per batch) and has
// each poll itself with what the list said, or by id when the list did not show it (batch-poll.ts decides what a poll
// means). The cap on concurrent HTTP work applies to each request (slots.ts), not to a poll as a whole. No timer per
// call or per batch; the tick exists only while some batch is tracked.
import type { Batch } from "./batch.js";
import type { Clock } from "../internal/clock.js";
import type { BatchEnvelope } from "../internal/schemas.js";
import type { StatusPages } from "./status-pages.js";

const NONE: ReadonlyMap<string, BatchEnvelope> = new Map();

export class Tracker {
  readonly #batches = new Set<Batch>();
  /** Polls in flight: a batch in here is skipped by the tick. */
  readonly #busy = new Map<Batch, Promise<void>>();
  readonly #clock: Clock;
  readonly #pollIntervalMs: number;
  readonly #signal: AbortSignal;
  readonly #onDone: (batch: Batch) => void;
  readonly #pages: StatusPages | undefined;
  #timer: unknown;

  /** `onDone` hears of each batch that leaves, finished. Without `pages`, every batch is read by id. */
  constructor(
    clock: Clock,
    pollIntervalMs: number,
    signal: AbortSignal,
    onDone: (batch: Batch) => void = () => undefined,
    pages?: StatusPages,
  ) {
    this.#clock = clock;
    this.#pollIntervalMs = pollIntervalMs;
    this.#signal = signal;
    this.#onDone = onDone;
    this.#pages = pages;
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
    const due = [...this.#batches].filter((b) => !this.#busy.has(b));
    if (due.length === 0) return;
    const listed = this.#pages
      ? this.#pages.read(due, this.#batches.size, this.#signal).catch(() => NONE)
      : Promise.resolve(NONE);
    for (const batch of due) this.#poll(batch, listed);
  }

  /** One poll of a batch, listed in `#busy` while it runs so no other poll of it starts (a result read once). */
  #poll(batch: Batch, listed: Promise<ReadonlyMap<string, BatchEnvelope>>): void {
    const polling = listed
      .then((seen) => batch.poll(this.#signal, seen.get(batch.id ?? "")))
      .catch(() => undefined)
      .finally(() => {
        this.#busy.delete(batch);
        if (!batch.done || !this.#batches.delete(batch)) return;
        this.#onDone(batch);
        // The last batch is done: no tick may outlive it and hold the process open.
        if (this.#batches.size === 0) {
          this.#clock.clearTimeout(this.#timer);
          this.#timer = undefined;
        }
      });
    this.#busy.set(batch, polling);
  }

  /**
   * Finishes batches whose callers all have their results but whose final status was not read yet (close()
   * waits for calls, not for that read), so each still reports batchDone with its final status.
   */
  async finishSettled(): Promise<void> {
    await Promise.all(this.#busy.values());
    const pending = [...this.#batches].filter((b) => b.unsettled === 0 && !b.done);
    // Through #poll, so a tick firing meanwhile skips them instead of reading their files a second time.
    for (const b of pending) if (!this.#busy.has(b)) this.#poll(b, Promise.resolve(NONE));
    await Promise.all(this.#busy.values());
    await Promise.all(pending.map((b) => b.finish("")));
  }
}
