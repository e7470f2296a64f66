// Batch lifecycle and the single line scheduler: validation → lines executed `concurrency` at
// a time, round-robin across batches → results appended in completion order → terminal state.
import { TERMINAL_STATUSES } from "../internal/schemas.js";
import { LineExecutor, type LineContext, type LineRequest } from "./line-executor.js";
import { inputTokens } from "./model.js";
import { EmulatorHttpError } from "./reply.js";
import { recordExpired, recordResult } from "./result-writer.js";
import type { BatchRecord, Store } from "./store.js";
import { validateOpenAiLines } from "./validate.js";
import type { EmulatorCounters, Flavor } from "./types.js";

/** Statuses whose input tokens count against the enqueued-token limit. */
const UNFINISHED = new Set(["in_progress", "finalizing"]);

export interface RunnerContext extends LineContext {
  flavor: Flavor;
  store: Store;
  counters: EmulatorCounters;
  concurrency: number;
  validationMs: number;
  maxLines: number;
  /** OpenAI flavor: input tokens all unfinished batches of one model may hold; undefined = no limit. */
  enqueuedTokenLimit?: number;
}

export class Runner {
  readonly #ctx: RunnerContext;
  #active = 0;
  /** Batches with lines left to start; rotated so batches share the workers. */
  #queue: BatchRecord[] = [];
  #validation = new Map<string, NodeJS.Timeout>();
  #running = new Set<Promise<void>>();
  readonly #executor: LineExecutor;
  #closed = false;

  constructor(ctx: RunnerContext) {
    this.#ctx = ctx;
    this.#executor = new LineExecutor(ctx);
  }

  #nowSec(): number {
    return Math.floor(this.#ctx.now() / 1000);
  }

  /** Starts validation; the batch leaves `validating` after `validationMs`. */
  submit(b: BatchRecord): void {
    const timer = setTimeout(() => {
      this.#validation.delete(b.id);
      this.#start(b);
    }, this.#ctx.validationMs);
    this.#validation.set(b.id, timer);
  }

  #stopValidation(b: BatchRecord): void {
    const timer = this.#validation.get(b.id);
    if (timer) clearTimeout(timer);
    this.#validation.delete(b.id);
  }

  #start(b: BatchRecord): void {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      // Populating a batch whose input file was deleted fails (docs/protocols.md §7).
      if (b.inputFileId === "") {
        b.failedAt = now;
        b.active = false;
        return;
      }
    } else {
      if (this.checkExpiry(b)) return;
      const { errors, model, customIds } = validateOpenAiLines(b.lines, b.endpoint, this.#ctx.maxLines);
      if (errors.length) {
        b.status = "failed";
        b.errors = errors;
        b.failedAt = now;
        b.active = false;
        return;
      }
      b.model = model;
      b.customIds = customIds;
      b.total = b.lines.length;
      if (this.#overTokenLimit(b)) return;
      b.status = "in_progress";
    }
    b.started = true;
    b.inProgressAt = now;
    this.#queue.push(b);
    this.#pump();
  }

  /**
   * OpenAI's enqueued-token limit: a batch whose input tokens, with those of the model's unfinished batches, exceed
   * the limit fails after validation with `token_limit_exceeded` (the create itself succeeded).
   */
  #overTokenLimit(b: BatchRecord): boolean {
    const limit = this.#ctx.enqueuedTokenLimit;
    if (limit === undefined) return false;
    b.enqueuedTokens = b.lines.reduce((n, line) => n + inputTokens((JSON.parse(line) as LineRequest).body), 0);
    let enqueued = 0;
    for (const other of this.#ctx.store.batches.values()) {
      if (other !== b && other.active && other.model === b.model && UNFINISHED.has(other.status))
        enqueued += other.enqueuedTokens;
    }
    if (enqueued + b.enqueuedTokens <= limit) return false;
    b.status = "failed";
    b.errors = [
      {
        code: "token_limit_exceeded",
        param: null,
        line: null,
        message: `Enqueued token limit reached for ${b.model} in organization org-emulator. Limit: ${limit.toLocaleString("en-US")} enqueued tokens. Please try again once some in_progress batches have been completed.`,
      },
    ];
    b.failedAt = this.#nowSec();
    b.active = false;
    return true;
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#ctx.concurrency && this.#queue.length) {
      const b = this.#queue.shift()!;
      if (b.stopped || b.next >= b.lines.length) continue;
      if (this.checkExpiry(b)) continue;
      const idx = b.next++;
      if (b.next < b.lines.length) this.#queue.push(b);
      this.#launch(b, idx);
    }
  }

  #launch(b: BatchRecord, idx: number): void {
    this.#active++;
    b.inFlight.add(idx);
    const p: Promise<void> = this.#runLine(b, idx)
      .catch(() => {
        // Aborted (cancel, expiry, close): the line leaves no result.
      })
      .finally(() => {
        this.#active--;
        b.inFlight.delete(idx);
        this.#running.delete(p);
        this.settle(b);
        this.#pump();
      });
    this.#running.add(p);
  }

  async #runLine(b: BatchRecord, idx: number): Promise<void> {
    const req = JSON.parse(b.lines[idx]) as LineRequest;
    const done = await this.#executor.run(req, b.abort.signal);
    if (done) recordResult(this.#ctx, b, req.custom_id, done.outcome, done.markers);
  }

  /** Moves a batch to its terminal state once no work is left. */
  settle(b: BatchRecord): void {
    if (!b.started) return;
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      if (!b.active || b.cancellingAt !== undefined || b.completed + b.failed + b.cancelled < b.total) return;
      b.finalizingAt = now;
      if (b.completed > 0) b.completedAt = now;
      else b.failedAt = now;
      b.active = false;
      return;
    }
    if (b.status === "in_progress" && b.completed + b.failed === b.total) {
      b.finalizingAt = now;
      b.completedAt = now;
      this.#finishOpenAi(b, "completed");
    } else if (b.status === "cancelling" && b.inFlight.size === 0) {
      b.cancelled = b.total - b.completed - b.failed;
      b.cancelledAt = now;
      this.#finishOpenAi(b, "cancelled");
    }
  }

  #finishOpenAi(b: BatchRecord, status: "completed" | "cancelled" | "expired"): void {
    b.status = status;
    b.active = false;
    const output = this.#ctx.store.files.get(b.outputFileId);
    const error = this.#ctx.store.files.get(b.errorFileId);
    if (output) output.hidden = b.completed === 0;
    if (error) error.hidden = b.failed === 0;
  }

  /**
   * Doubleword (docs/protocols.md §7): idempotent; a finished batch turns `cancelled`, one still validating stays
   * `cancelling` forever, otherwise every unfinished line is cancelled at once and writes nothing.
   * OpenAI: `cancelling` until in-flight lines finish; call `settle` after rendering the answer.
   */
  cancel(b: BatchRecord): void {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      if (b.cancellingAt !== undefined) return;
      b.cancellingAt = b.cancelledAt = now;
      this.#stopValidation(b);
      if (b.started && b.active) b.cancelled = b.total - b.completed - b.failed;
      b.stopped = true;
      b.active = false;
      b.abort.abort();
      return;
    }
    if (TERMINAL_STATUSES.has(b.status)) {
      throw new EmulatorHttpError(400, `Cannot cancel a batch with status '${b.status}'.`, {
        code: "batch_not_cancellable",
      });
    }
    if (b.status === "cancelling") return;
    b.status = "cancelling";
    b.cancellingAt = now;
    b.stopped = true;
    if (!b.started) {
      this.#stopValidation(b);
      // Nothing ran: settle() needs `started` to finish the cancel.
      b.started = true;
    }
  }

  /** OpenAI: expires the batch when its window has passed; returns whether it is (now) expired. */
  checkExpiry(b: BatchRecord): boolean {
    if (this.#ctx.flavor !== "openai") return false;
    if (b.status === "expired") return true;
    if (this.#ctx.now() < b.expiresAt * 1000) return false;
    return this.expire(b);
  }

  /** Forces the completion window to pass now; returns whether the batch became `expired`. */
  expire(b: BatchRecord): boolean {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      // Doubleword never expires a batch; it only reports expired_at once the deadline is past.
      b.expiresAt = Math.min(b.expiresAt, now - 1);
      return false;
    }
    if (b.status !== "validating" && b.status !== "in_progress") return false;
    this.#stopValidation(b);
    b.stopped = true;
    b.abort.abort();
    if (b.started) {
      const unfinished = [...b.inFlight].sort((x, y) => x - y);
      for (let i = b.next; i < b.lines.length; i++) unfinished.push(i);
      for (const idx of unfinished) recordExpired(this.#ctx.store, b, b.customIds[idx]);
      b.next = b.lines.length;
    }
    b.expiredAt = now;
    this.#finishOpenAi(b, "expired");
    return true;
  }

  /** Stops timers and in-flight lines; resolves when every line has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#validation.values()) clearTimeout(timer);
    this.#validation.clear();
    this.#queue = [];
    for (const b of this.#ctx.store.batches.values()) b.abort.abort();
    await Promise.allSettled([...this.#running]);
  }
}
