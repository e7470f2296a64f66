// The engine's BatchRecorder for a durable store: turns each change a Batch reports into a queued write (grouped by
// the writer into one transaction per flush, poll or chunk of result lines) and knows which batches this process
// holds a lease on.
import type { Batch } from "../core/batch.js";
import type { Call } from "../core/call.js";
import type { BatchRecorder } from "../core/recorder.js";
import type { BatchSnapshot, FoundLine } from "./types.js";
import { lineIdentity } from "./identity.js";
import type { StoreWriter } from "./writer.js";

export class StoreRecorder implements BatchRecorder {
  readonly keepsResults = true;
  readonly #writer: StoreWriter;
  readonly #onHold: () => void;
  readonly #onWithdrawn: (calls: Call[], found: Map<string, FoundLine>) => void;
  /** Lines each intent found taken, by batch key, until the batch withdraws them. */
  readonly #taken = new Map<string, Map<string, FoundLine>>();
  /** Keys of the unfinished batches this process holds a lease on. */
  readonly held = new Set<string>();
  /** Set by close with detach: what is cut short now is left for a later process, never recorded as ended. */
  detaching = false;

  /**
   * `onHold`: a lease was taken (its renewals must run). `onWithdrawn`: calls whose lines were taken out of a file
   * because their identity runs elsewhere, with the line found for each custom_id.
   */
  constructor(
    writer: StoreWriter,
    onHold: () => void,
    onWithdrawn: (calls: Call[], found: Map<string, FoundLine>) => void,
  ) {
    this.#writer = writer;
    this.#onHold = onHold;
    this.#onWithdrawn = onWithdrawn;
  }

  async intent(batch: Batch): Promise<ReadonlySet<string> | undefined> {
    this.held.add(batch.key);
    this.#onHold();
    const lines = [];
    for (const c of batch.calls())
      lines.push({
        customId: c.customId,
        identity: c.identity ?? lineIdentity(c.customId),
        // Beside a key: to refuse the key with another body. Unkeyed (requestIdentity "adopt"): to find the line as an
        // orphan should this process die. A fingerprint identity holds it already.
        fingerprint: c.identity?.startsWith("f:") ? "" : (c.fingerprint ?? ""),
      });
    const taken = await this.#writer.intent({ key: batch.key, endpoint: batch.endpoint, model: batch.model, lines });
    if (!taken?.size) return undefined;
    this.#taken.set(batch.key, taken);
    return new Set(taken.keys());
  }

  withdrawn(batch: Batch, calls: Call[]): void {
    const found = this.#taken.get(batch.key);
    this.#taken.delete(batch.key);
    if (found) this.#onWithdrawn(calls, found);
  }

  uploaded(batch: Batch): void {
    this.#snapshot(batch);
  }

  submitted(batch: Batch): void {
    this.#snapshot(batch);
  }

  progress(batch: Batch): void {
    this.#snapshot(batch);
  }

  cursor(batch: Batch): void {
    this.#snapshot(batch);
  }

  result(batch: Batch, customId: string, line: string): void {
    this.#writer.update({ key: batch.key, results: [{ customId, line }] });
  }

  settled(): void {}

  /** The line went into a later batch: its result here (a transient failure) must never be replayed as final. */
  retried(batch: Batch, customId: string): void {
    this.#writer.update({ key: batch.key, retried: [customId] });
  }

  /** Nothing was created upstream: its lines are lost, and a later call with their identity is submitted anew. */
  submitFailed(batch: Batch): void {
    if (this.detaching) this.release([batch.key]);
    else this.#end(batch);
  }

  /** Ended upstream: recorded as ended. Given up on while it may still run: left, unleased, for a later process. */
  finished(batch: Batch): void {
    if (!this.detaching && (batch.ended || batch.unread === 0)) this.#end(batch);
    else this.release([batch.key]);
  }

  release(keys: string[]): void {
    for (const k of keys) this.held.delete(k);
    if (keys.length) this.#writer.release(keys);
  }

  #end(batch: Batch): void {
    this.held.delete(batch.key);
    this.#writer.update({ key: batch.key, snapshot: snapshot(batch), terminal: true });
  }

  #snapshot(batch: Batch): void {
    this.#writer.update({ key: batch.key, snapshot: snapshot(batch) });
  }
}

function snapshot(b: Batch): BatchSnapshot {
  return {
    fileId: b.inputFileId,
    batchId: b.id,
    status: b.status,
    counts: { ...b.counts },
    output: b.output && { ...b.output },
    error: b.error && { ...b.error },
    ...(b.batchErrors.length && { batchErrors: [...b.batchErrors] }),
  };
}
