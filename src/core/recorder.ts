// The one seam through which every change of a batch's state passes, for a durable store to record. Each method is
// called by the Batch right after the change it names, synchronously; a recorder must not throw.
import type { Batch } from "./batch.js";

export type ResultFile = "output" | "error";

export interface BatchRecorder {
  /** The batch exists upstream: `batch.id`, `batch.inputFileId` and `batch.createdAt` are set; `progress` follows. */
  submitted(batch: Batch): void;
  /** Upload or create failed for good; every call of the batch was rejected. */
  submitFailed(batch: Batch, reason: Error): void;
  /** A status read changed the status, the counts, a file id or the batch's errors. */
  progress(batch: Batch): void;
  /** A result file's cursor moved to `next` (lines handed over). */
  cursor(batch: Batch, file: ResultFile, next: number): void;
  /** One call's line failed transiently: the call left this batch for a later one. */
  retried(batch: Batch, customId: string): void;
  /** One call of the batch settled. */
  settled(batch: Batch, customId: string, ok: boolean): void;
  /** The batch is done: every call settled, batchDone emitted. */
  finished(batch: Batch, why: string): void;
}
