// In-memory state: files and batches, bounded by stored bytes (oldest settled first out).
import { randomBytes, randomUUID } from "node:crypto";
import type { BatchError } from "./validate.js";
import type { Flavor } from "./types.js";

export type FileKind = "input" | "output" | "error";

export interface FileRecord {
  id: string;
  kind: FileKind;
  purpose: string;
  filename: string;
  /** Seconds. */
  createdAt: number;
  expiresAt?: number;
  /** Input: non-blank lines in input order. Output/error: result lines in completion order. No "\n". */
  lines: string[];
  /**
   * The custom_id of each line, for `search` and (output/error) eviction: recorded as result lines are appended, or
   * by Doubleword's upload checks. Empty for OpenAI input files, whose lines are only checked when a batch starts.
   */
  customIds: string[];
  bytes: number;
  batchId?: string;
  /** OpenAI: output/error files exist only once their batch is finished. */
  hidden: boolean;
}

export type OpenAiStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

export interface BatchRecord {
  id: string;
  seq: number;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  /** Caller metadata as stored (Doubleword: reserved keys dropped). */
  metadata: Record<string, string> | null;
  createdAt: number;
  /** Creation time in ms (lists may lag behind it, see `listLagMs`). */
  createdAtMs: number;
  expiresAt: number;
  /** The input lines, held by reference so deleting the input file does not break a running batch. */
  lines: readonly string[];
  /** Each input line's custom_id: Doubleword's from the upload checks, OpenAI's from the validation that starts the batch. */
  customIds: readonly string[];
  outputFileId: string;
  errorFileId: string;
  /** Doubleword: deleting an output/error file blanks the id on the batch. */
  outputDeleted: boolean;
  errorDeleted: boolean;
  /** OpenAI status (Doubleword computes its status from the fields below). */
  status: OpenAiStatus;
  /** Lines were populated (Doubleword `requests_started_at`). */
  started: boolean;
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
  inProgressAt?: number;
  finalizingAt?: number;
  completedAt?: number;
  failedAt?: number;
  expiredAt?: number;
  cancellingAt?: number;
  cancelledAt?: number;
  errors?: BatchError[];
  model?: string;
  usage: { input: number; output: number };
  /** Input tokens counted against the enqueued-token limit (set when the limit is on). */
  enqueuedTokens: number;
  /** Work is scheduled or running; inactive batches are evictable. */
  active: boolean;
  /** Next line index to start. */
  next: number;
  inFlight: Set<number>;
  /** No further lines are started. */
  stopped: boolean;
  /** Aborts in-flight lines (Doubleword cancel, OpenAI expiry, close). */
  abort: AbortController;
}

export function newFileId(flavor: Flavor): string {
  return flavor === "openai" ? `file-${randomBytes(12).toString("hex")}` : randomUUID();
}

export function newBatchId(flavor: Flavor): string {
  return flavor === "openai" ? `batch_${randomBytes(16).toString("hex")}` : randomUUID();
}

export function newLineId(flavor: Flavor): string {
  return `batch_req_${flavor === "openai" ? randomBytes(16).toString("hex") : randomUUID()}`;
}

export const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export class Store {
  // Maps iterate in insertion order, which is creation order: eviction walks oldest first.
  readonly files = new Map<string, FileRecord>();
  readonly batches = new Map<string, BatchRecord>();
  /** custom_id → when its result line was first appended (performance clock). */
  readonly availableAt = new Map<string, number>();
  #seq = 0;
  #storedBytes = 0;

  constructor(private readonly maxStoredBytes: number) {}

  nextSeq(): number {
    return ++this.#seq;
  }

  addFile(file: FileRecord): void {
    this.files.set(file.id, file);
    this.#storedBytes += file.bytes;
    this.evict();
  }

  addBatch(batch: BatchRecord): void {
    this.batches.set(batch.id, batch);
  }

  /** Appends a result line; returns false when the file was evicted or deleted meanwhile. */
  appendLine(fileId: string, customId: string, text: string): boolean {
    const file = this.files.get(fileId);
    if (!file) return false;
    file.lines.push(text);
    file.customIds.push(customId);
    const bytes = Buffer.byteLength(text) + 1;
    file.bytes += bytes;
    this.#storedBytes += bytes;
    if (!this.availableAt.has(customId)) this.availableAt.set(customId, performance.timeOrigin + performance.now());
    if (this.#storedBytes > this.maxStoredBytes) this.evict();
    return true;
  }

  removeFile(id: string): void {
    const file = this.files.get(id);
    if (!file) return;
    this.files.delete(id);
    this.#storedBytes -= file.bytes;
    // An input file's ids name requests, not result lines: their availability stays.
    if (file.kind !== "input") for (const customId of file.customIds) this.availableAt.delete(customId);
  }

  /** Drops the oldest inactive batches (with their result files), then the oldest unused files. */
  evict(): void {
    if (this.#storedBytes <= this.maxStoredBytes) return;
    const inUse = new Set<string>();
    for (const b of this.batches.values()) if (b.active) inUse.add(b.inputFileId);
    for (const b of this.batches.values()) {
      if (this.#storedBytes <= this.maxStoredBytes) return;
      if (b.active) continue;
      this.batches.delete(b.id);
      this.removeFile(b.outputFileId);
      this.removeFile(b.errorFileId);
    }
    for (const f of this.files.values()) {
      if (this.#storedBytes <= this.maxStoredBytes) return;
      if (inUse.has(f.id) || (f.batchId && this.batches.get(f.batchId)?.active)) continue;
      this.removeFile(f.id);
    }
  }
}
