// Wire shapes of File, Batch and list objects per flavor (docs/protocols.md §2): Doubleword omits unset
// fields, OpenAI writes explicit nulls.
import { TERMINAL_STATUSES } from "../internal/schemas.js";
import type { BatchRecord, FileRecord } from "./store.js";
import type { Flavor } from "./types.js";

/** Doubleword status, computed on every read as its server does (docs/protocols.md §5.2). */
export function dwStatus(b: BatchRecord): string {
  const finished = b.started && (b.cancellingAt !== undefined || b.completed + b.failed + b.cancelled === b.total);
  if (b.cancellingAt !== undefined) return finished ? "cancelled" : "cancelling";
  if (b.failedAt !== undefined && !b.started) return "failed";
  if (!b.started) return "validating";
  if (finished && b.failed === b.total) return "failed";
  if (finished) return "completed";
  return "in_progress";
}

/** Whether result lines may still be appended (Doubleword's `running` for X-Incomplete). */
export function isRunning(b: BatchRecord): boolean {
  if (!b.started) return b.failedAt === undefined;
  if (b.cancellingAt !== undefined) return false;
  return b.completed + b.failed + b.cancelled < b.total;
}

export function fileObject(flavor: Flavor, f: FileRecord): Record<string, unknown> {
  if (flavor === "openai") {
    return {
      id: f.id,
      object: "file",
      bytes: f.bytes,
      created_at: f.createdAt,
      expires_at: f.expiresAt ?? null,
      filename: f.filename,
      purpose: f.purpose,
      status: "processed",
      status_details: null,
    };
  }
  const o: Record<string, unknown> = {
    id: f.id,
    object: "file",
    bytes: f.bytes,
    created_at: f.createdAt,
    filename: f.filename,
    purpose: f.purpose,
  };
  if (f.expiresAt !== undefined) o.expires_at = f.expiresAt;
  return o;
}

export function batchObject(flavor: Flavor, b: BatchRecord, nowSec: number): Record<string, unknown> {
  if (flavor === "openai") {
    const terminal = TERMINAL_STATUSES.has(b.status);
    return {
      id: b.id,
      object: "batch",
      endpoint: b.endpoint,
      ...(b.model !== undefined ? { model: b.model } : {}),
      errors: b.errors ? { object: "list", data: b.errors } : null,
      input_file_id: b.inputFileId,
      completion_window: b.completionWindow,
      status: b.status,
      output_file_id: terminal && b.completed > 0 ? b.outputFileId : null,
      error_file_id: terminal && b.failed > 0 ? b.errorFileId : null,
      created_at: b.createdAt,
      in_progress_at: b.inProgressAt ?? null,
      expires_at: b.expiresAt,
      finalizing_at: b.finalizingAt ?? null,
      completed_at: b.completedAt ?? null,
      failed_at: b.failedAt ?? null,
      expired_at: b.expiredAt ?? null,
      cancelling_at: b.cancellingAt ?? null,
      cancelled_at: b.cancelledAt ?? null,
      request_counts: { total: b.total, completed: b.completed, failed: b.failed },
      usage: {
        input_tokens: b.usage.input,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: b.usage.output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: b.usage.input + b.usage.output,
      },
      metadata: b.metadata,
    };
  }
  const status = dwStatus(b);
  const o: Record<string, unknown> = {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status,
  };
  if (!b.outputDeleted) o.output_file_id = b.outputFileId;
  if (!b.errorDeleted) o.error_file_id = b.errorFileId;
  o.created_at = b.createdAt;
  o.expires_at = b.expiresAt;
  const stamps: Array<[string, number | undefined]> = [
    ["in_progress_at", b.inProgressAt],
    ["finalizing_at", status === "completed" ? b.finalizingAt : undefined],
    ["completed_at", b.completedAt],
    ["failed_at", b.failedAt],
    // Shown whenever the deadline has passed, whatever the status; it is not a status signal.
    ["expired_at", nowSec > b.expiresAt ? b.expiresAt : undefined],
    ["cancelling_at", b.cancellingAt],
    ["cancelled_at", b.cancelledAt],
  ];
  for (const [key, value] of stamps) if (value !== undefined) o[key] = value;
  o.request_counts = { total: b.total, completed: b.completed, failed: b.failed };
  o.metadata = { ...b.metadata, request_source: "api" };
  o.dwext = { source: "api" };
  return o;
}

export function listObject(
  flavor: Flavor,
  data: Array<Record<string, unknown>>,
  hasMore: boolean,
): Record<string, unknown> {
  const first = data[0]?.id;
  const last = data[data.length - 1]?.id;
  if (flavor === "openai")
    return { object: "list", data, first_id: first ?? null, last_id: last ?? null, has_more: hasMore };
  return data.length
    ? { object: "list", data, first_id: first, last_id: last, has_more: hasMore }
    : { object: "list", data, has_more: false };
}
