// The one seam through which every change of a batch's state passes, for a durable store to record. Each method is
// called by the Batch right after the change it names, synchronously; a recorder must not throw.
import type { Batch } from "./batch.js";
import type { Call } from "./call.js";

export type ResultFile = "output" | "error";

export interface BatchRecorder {
  /**
   * A durable recorder: the batch keeps reading until every line of its file has its result (not only those whose
   * caller still waits), and lines without a caller (a resumed batch) are read and handed to `result`.
   */
  readonly keepsResults?: boolean;
  /**
   * The batch was flushed and is about to be uploaded; the upload waits for this (the store records the intent).
   * Resolves with the custom_ids of lines whose request already runs, or was answered, elsewhere (another process
   * submitted it after this one looked it up): the batch takes them out of its file and hands them to `withdrawn`.
   */
  intent?(batch: Batch): Promise<ReadonlySet<string> | undefined>;
  /** The waiting calls of the lines taken out of the file (see `intent`), before upload: no longer the batch's. */
  withdrawn?(batch: Batch, calls: Call[]): void;
  /** The file was uploaded: `batch.inputFileId` is set. */
  uploaded?(batch: Batch): void;
  /** A result line for one of the batch's lines was read, verbatim (before its caller, if any, is settled). */
  result?(batch: Batch, customId: string, line: string): void;
  /** The batch exists upstream: `batch.id`, `batch.inputFileId` and `batch.createdAt` are set; `progress` follows. */
  submitted(batch: Batch): void;
  /** Upload or create failed for good; every call of the batch was rejected. */
  submitFailed(batch: Batch, reason: Error): void;
  /** A status read changed the status, the counts, a file id or the batch's errors. */
  progress(batch: Batch): void;
  /** A result file's cursor moved to `next` (lines handed over). */
  cursor(batch: Batch, file: ResultFile, next: number): void;
  /** One call left this batch for a later one (its line failed transiently, or the batch was refused for capacity). */
  retried(batch: Batch, customId: string): void;
  /** One call of the batch settled. */
  settled(batch: Batch, customId: string, ok: boolean): void;
  /**
   * The batch is done: every call settled, batchDone emitted. `batch.ended` says whether the provider ended it (a
   * terminal status, or gone) or autobatch gave up waiting (its lines may still run upstream).
   */
  finished(batch: Batch, why: string): void;
}
