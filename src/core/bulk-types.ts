// What a bulk job takes and yields, as users see it in their editor (`AutoBatcher.bulk`); the job is bulk.ts.
import type { Endpoint } from "../internal/endpoints.js";

/** Options of one bulk job (`AutoBatcher.bulk`). */
export interface BulkOptions {
  /**
   * Reading the input pauses while the job's results not yet read by the consumer, plus the client's lines not yet
   * in a running batch (looked up in the store, buffered, being uploaded, waiting for capacity), reach this many.
   * Lines. Default: twice the client's `batchSize`.
   */
  maxQueued?: number;
  /**
   * With a `store`: each request's idempotency key is this prefix followed by its id, so a rerun of the job with the
   * same prefix gets stored results (or attaches to batches still running) instead of paying again. Default: none,
   * requests are matched as the client's `requestIdentity` says. Without a store it has no effect.
   */
  idempotencyKeyPrefix?: string;
  /**
   * Aborting stops the job as leaving the loop early does (see `AutoBatcher.bulk`), and the iterator then throws
   * `APIUserAbortError`. Default: none.
   */
  signal?: AbortSignal;
}

/** One request as the core takes it; the id names its result and must not repeat among the job's unanswered ones. */
export interface BulkInput {
  id: string;
  endpoint?: Endpoint;
  params: unknown;
}

/** A result in completion order: the value `create()` would resolve with, or the typed error it would reject with. */
export type BulkOutcome<T = unknown, E = unknown> =
  | { id: string; ok: true; result: T }
  | { id: string; ok: false; error: E };
