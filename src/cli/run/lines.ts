// What goes into the result files: each line in the provider's own shapes, under the user's custom_id.
import type { RawResult } from "../../core/call.js";
import { APIError, BatchFailedError } from "../../errors.js";

/** Token counts of one result body's `usage` (chat and embeddings name them differently from responses). */
export function usageOf(body: unknown): { input: number; output: number } {
  const u = (body as { usage?: Record<string, unknown> } | null)?.usage;
  if (typeof u !== "object" || u === null) return { input: 0, output: 0 };
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return { input: n(u.prompt_tokens ?? u.input_tokens), output: n(u.completion_tokens ?? u.output_tokens) };
}

/**
 * An output line. `id` is the engine's own custom_id for the line, which is how the line appears in the batch's
 * files upstream (`autobatch batches results`).
 */
export function successLine(customId: string, r: RawResult): string {
  return JSON.stringify({
    id: r.customId,
    custom_id: customId,
    response: { status_code: r.status, request_id: r.requestId ?? null, body: r.body },
    error: null,
  });
}

/**
 * An error-file line: a failed HTTP status as the provider writes it (`response` with the error body), anything
 * else (expired, cancelled, unreadable) as `error: {code, message}`.
 */
export function failureLine(customId: string, err: unknown): string {
  const id = (err as { customId?: string }).customId ?? null;
  if (err instanceof APIError && typeof err.status === "number") {
    const e = err;
    const error = e.error ?? { message: e.message, type: e.type ?? null, param: e.param ?? null, code: e.code ?? null };
    return JSON.stringify({
      id,
      custom_id: customId,
      response: { status_code: e.status, request_id: e.requestID ?? null, body: { error } },
      error: null,
    });
  }
  const code =
    err instanceof BatchFailedError
      ? `batch_${err.batchStatus ?? "failed"}`
      : ((err as { code?: string | null }).code ?? (err as Error).name ?? "error");
  return JSON.stringify({
    id,
    custom_id: customId,
    response: null,
    error: { code, message: (err as Error).message ?? String(err) },
  });
}
