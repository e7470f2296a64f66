// The sending part of a run: the requests not yet done go through the engine as one bulk job; each result becomes
// one line in the output or errors file under the user's custom_id. Reading pauses while two batch files' worth of
// lines wait to be uploaded, so the input is never held whole.
import { BulkJob } from "../../core/bulk.js";
import type { BulkInput } from "../../core/bulk-types.js";
import type { RawResult } from "../../core/call.js";
import { Engine } from "../../core/engine.js";
import type { AutoBatcherOptions } from "../../options.js";
import { safeURL } from "../../internal/safe-url.js";
import { batchListSchema } from "../../internal/schemas.js";
import { StoreError } from "../../store/errors.js";
import { failureLine, successLine, usageOf } from "./lines.js";
import { readRequests } from "./input.js";
import type { ResultFile } from "./output.js";
import type { Snapshot } from "./progress.js";
import type { RunSettings } from "./options.js";

/** The provider could not be reached or refused the key: nothing was sent; exit 1. */
export class UnreachableError extends Error {}

export interface Tally {
  succeeded: number;
  failed: number;
  /** Lines sent again after a transient failure (each counted once, however many times it was resent). */
  retried: number;
  /** Lines whose batch could not be created (no batch id): not written, a rerun sends them. */
  unsent: number;
  /** The reason of the last such failure, for the summary. */
  unsentReason?: string;
  batches: number;
  tokensIn: number;
  tokensOut: number;
}

export class Execution {
  readonly tally: Tally = { succeeded: 0, failed: 0, retried: 0, unsent: 0, batches: 0, tokensIn: 0, tokensOut: 0 };
  readonly engine: Engine;
  readonly #s: RunSettings;
  /**
   * Each line's idempotency key in the store is this plus its custom_id: a rerun of the same input finds the lines
   * an earlier process submitted (attaching to them, or replaying their stored results) instead of paying again.
   */
  readonly #keyPrefix: string;
  readonly #done: ReadonlySet<string>;
  readonly #output: ResultFile;
  readonly #errors: ResultFile;
  readonly #batchStatus = new Map<string, string>();
  readonly #startedAt = Date.now();
  /** The graceful close started once the input is read whole (it flushes what is buffered, results still arrive). */
  #closing: Promise<void> | undefined;
  /** Set on Ctrl-C: calls released from now on are not results and are not written. */
  #interrupted = false;

  constructor(s: RunSettings, inputSha256: string, done: ReadonlySet<string>, output: ResultFile, errors: ResultFile) {
    this.#s = s;
    this.#keyPrefix = `run:${inputSha256.slice(0, 16)}:`;
    this.#done = done;
    this.#output = output;
    this.#errors = errors;
    const options: AutoBatcherOptions = {
      batchSize: s.batchSize,
      maxBatchBytes: s.maxBatchBytes,
      lineRetries: s.retryFailed,
      store: s.state,
      // Only the keyed lines of this run are ever matched in the store, never two identical bodies to each other.
      requestIdentity: "keys",
      ...(s.apiKey !== undefined && { apiKey: s.apiKey }),
      ...(s.baseURL !== undefined && { baseURL: s.baseURL }),
      ...(s.completionWindow !== undefined && { completionWindow: s.completionWindow }),
      ...(s.metadata !== undefined && { metadata: s.metadata }),
      ...(s.batchWindowMs !== undefined && { batchWindowMs: s.batchWindowMs }),
      ...(s.pollIntervalMs !== undefined && { pollIntervalMs: s.pollIntervalMs }),
    };
    this.engine = new Engine(options);
    const ev = this.engine.events;
    ev.on("batchSubmitted", (e) => {
      this.tally.batches++;
      this.#batchStatus.set(e.batchId, "validating");
    });
    ev.on("callRetried", (e) => {
      if (e.retry === 1) this.tally.retried++;
    });
    ev.on("batchProgress", (e) => this.#batchStatus.set(e.batchId, e.status));
    ev.on("batchDone", (e) => this.#batchStatus.set(e.batchId, e.status));
  }

  /** Sends every request not done yet and resolves when each has settled and been written. */
  async run(): Promise<void> {
    await this.#preflight();
    const job = new BulkJob(this.engine, this.#requests(), {
      raw: true,
      maxQueued: 2 * this.#s.batchSize,
      idempotencyKeyPrefix: this.#keyPrefix,
    });
    for await (const r of job) {
      if (r.ok) this.#succeeded(r.id, r.result as RawResult);
      else this.#failed(r.id, r.error);
    }
    await (this.#closing ?? this.engine.close());
    this.flush();
  }

  /** The lines not done yet; reading stops on Ctrl-C. */
  async *#requests(): AsyncGenerator<BulkInput> {
    for await (const req of readRequests(this.#s.input)) {
      if (this.#interrupted) return;
      if (this.#done.has(req.customId)) continue;
      yield { id: req.customId, endpoint: req.endpoint, params: req.body };
    }
    if (!this.#interrupted) this.#closing = this.engine.close();
  }

  /** One cheap read first, so a wrong URL or key is one clear error rather than a failure per batch. */
  async #preflight(): Promise<void> {
    try {
      await this.engine.storeLocation();
    } catch (err) {
      await this.engine.close().catch(() => undefined);
      // The store's own error names the file; the flag says where it came from.
      if (err instanceof StoreError) err.message = `--state ${this.#s.state}: ${err.message}`;
      throw err;
    }
    try {
      await this.engine.transport.json({ method: "GET", path: "/batches", query: { limit: 1 } }, batchListSchema);
    } catch (err) {
      await this.engine.close();
      throw new UnreachableError(`cannot use ${safeURL(this.engine.options.baseURL)}: ${(err as Error).message}`);
    }
  }

  #succeeded(id: string, r: RawResult): void {
    this.tally.succeeded++;
    const u = usageOf(r.body);
    this.tally.tokensIn += u.input;
    this.tally.tokensOut += u.output;
    this.#output.append(successLine(id, r));
  }

  #failed(id: string, err: unknown): void {
    if (this.#interrupted) return;
    // No batch id: the batch was never created (upload or create failed), so this is no result of the line's own.
    if ((err as { batchId?: string }).batchId === undefined) {
      this.tally.unsent++;
      this.tally.unsentReason = (err as Error).message;
      return;
    }
    this.tally.failed++;
    this.#errors.append(failureLine(id, err));
  }

  /**
   * Ctrl-C: stop reading and release every call unwritten; with `cancel`, cancel the batches upstream, else detach:
   * they go on, recorded in the store, for the rerun to attach to.
   */
  async interrupt(cancel: boolean): Promise<void> {
    this.#interrupted = true;
    await this.engine.close(cancel ? { cancel: true } : { detach: true });
    this.flush();
  }

  flush(): void {
    this.#output.flush();
    this.#errors.flush();
  }

  snapshot(total: number, before: { succeeded: number; failed: number }): Snapshot {
    const batches: Record<string, number> = {};
    for (const status of this.#batchStatus.values()) batches[status] = (batches[status] ?? 0) + 1;
    const settled = this.tally.succeeded + this.tally.failed;
    const secs = (Date.now() - this.#startedAt) / 1000;
    return {
      total,
      succeeded: before.succeeded + this.tally.succeeded,
      failed: before.failed + this.tally.failed,
      batches,
      tokensIn: this.tally.tokensIn,
      tokensOut: this.tally.tokensOut,
      rate: settled > 0 && secs > 0 ? settled / secs : 0,
    };
  }
}
