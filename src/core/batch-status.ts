// What the provider last said about one batch (status, counts, batch-level errors) and what that means together:
// terminal, refused over the token limit, or a `completed` that its own counts contradict. Owned by one Batch.
import type { BatchCounts } from "../events.js";
import { TERMINAL_STATUSES, type BatchEnvelope } from "../internal/schemas.js";

/** The batch-level error code of a batch refused over the provider's enqueued-token limit (OpenAI, Azure). */
const TOKEN_LIMIT = "token_limit_exceeded";

export class BatchStatus {
  #status = "submitting";
  #counts: BatchCounts = { total: 0, completed: 0, failed: 0 };
  #errors: string[] = [];
  #errorCode: string | undefined;
  #createdAt: number | undefined;
  /** The last look saw a contradicting terminal status (see doubt()). */
  #doubted = false;

  /** The provider's `created_at` (s), once it said. */
  get createdAt(): number | undefined {
    return this.#createdAt;
  }
  get status(): string {
    return this.#status;
  }
  get counts(): Readonly<BatchCounts> {
    return this.#counts;
  }
  /** Errors the provider attached to the batch (e.g. validation failures), for the final message. */
  get errors(): readonly string[] {
    return this.#errors;
  }

  /** What an earlier process recorded of the batch (a resumed batch). */
  restore(status: string, counts: BatchCounts, errors: readonly string[]): void {
    this.#status = status;
    this.#counts = { ...counts };
    this.#errors = [...errors];
  }

  /** Takes in a batch object read from the provider. Returns whether its status or counts changed. */
  apply(b: BatchEnvelope): boolean {
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
    this.#createdAt ??= b.created_at ?? undefined;
    this.#counts = counts;
    const errs = b.errors?.data ?? [];
    this.#errorCode = errs[0]?.code ?? undefined;
    if (errs.length)
      this.#errors = errs.map(
        (e) => `${e.code ?? "error"}${e.line != null ? ` (line ${e.line})` : ""}: ${e.message ?? ""}`,
      );
    return changed;
  }

  get terminal(): boolean {
    return TERMINAL_STATUSES.has(this.#status);
  }

  /** Past validation: nothing can refuse the batch as a whole any more. */
  get validated(): boolean {
    return this.#status !== "submitting" && this.#status !== "validating" && this.#status !== "failed";
  }

  /** Refused over the provider's enqueued-token limit: its lines did not run, and may once capacity frees up. */
  get overCapacity(): boolean {
    return this.#status === "failed" && this.#errorCode === TOKEN_LIMIT;
  }

  /** `completed` while the counts say lines are unfinished: a status read from a lagging replica, or a bug. */
  get contradicts(): boolean {
    const { total, completed, failed } = this.#counts;
    return this.#status === "completed" && completed + failed < total;
  }

  /** True when a contradicting terminal status is not to be trusted yet: only when the next look says it again. */
  doubt(): boolean {
    if (!this.contradicts) return (this.#doubted = false);
    if (this.#doubted) return false;
    return (this.#doubted = true);
  }
}
