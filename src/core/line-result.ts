// One result line → the value its caller resolves with, or a typed error. Pure: the batch looks the call up and
// settles it; this file only reads the provider's envelope (OpenAI's and Doubleword's error shapes included).
import type { Call, RawResult } from "./call.js";
import { shapeResult, type Endpoint } from "../internal/endpoints.js";
import {
  APIConnectionError,
  APIError,
  type AutoBatchError,
  BatchFailedError,
  ResultParseError,
  type ProviderError,
} from "../errors.js";
import { errorFromBody, parseErrorBody } from "../internal/error-body.js";
import { recoverCustomId } from "../internal/jsonl.js";
import { isRetryableStatus } from "../internal/retry.js";
import { readResultLine, type ResultLine } from "../internal/schemas.js";

/** A line as read: its envelope, or why it cannot be used and the custom_id its text still shows (if any). */
export type ParsedLine = { line: ResultLine } | { why: string; customId: string | undefined };

export interface LineContext {
  endpoint: Endpoint;
  batchId: string | undefined;
  batchStatus: string;
}

export interface LineOutcome {
  ok: boolean;
  value: unknown;
  /** A failure worth sending again in a later batch (408, 409, 429, 5xx, an expired batch, a timeout). */
  transient?: boolean;
}

/** Error-line codes (no HTTP response) that say the request did not run, not that it is wrong. */
const TRANSIENT_CODES = new Set(["batch_expired", "request_timeout"]);

export function parseLine(raw: string): ParsedLine {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { why: "is not valid JSON", customId: recoverCustomId(raw) };
  }
  const line = readResultLine(parsed);
  if (typeof line === "string")
    return { why: `does not match the result line shape (${line})`, customId: recoverCustomId(raw) };
  return { line };
}

/** What the call of `line` settles with. A body that breaks shaping (e.g. a malformed Responses `output`) fails its own call. */
export function lineOutcome(call: Call, line: ResultLine, ctx: LineContext): LineOutcome {
  try {
    return settleFromLine(call, line, ctx);
  } catch (err) {
    return {
      ok: false,
      value: new ResultParseError(`result line for this call could not be used: ${(err as Error).message}`, {
        customId: line.custom_id,
        batchId: ctx.batchId,
      }),
    };
  }
}

function settleFromLine(call: Call, line: ResultLine, ctx: LineContext): LineOutcome {
  const { custom_id: customId, response, error } = line;
  const errCtx = { customId, batchId: ctx.batchId, requestID: response?.request_id };
  if (response && response.status_code >= 200 && response.status_code < 300 && !error) {
    const value: unknown = call.raw
      ? ({
          status: response.status_code,
          body: response.body,
          requestId: response.request_id,
          customId,
          batchId: ctx.batchId,
        } satisfies RawResult)
      : shapeResult(ctx.endpoint, response.body, call.decodeBase64, response.request_id);
    return { ok: true, value };
  }
  if (response) {
    const { error: inner, message } = bodyError(response.body);
    return {
      ok: false,
      value: APIError.generate(response.status_code, inner, message ?? "the request failed", undefined, errCtx),
      transient: isRetryableStatus(response.status_code),
    };
  }
  const value = lineError(error?.code, error?.message, errCtx, ctx.batchStatus);
  return { ok: false, value, transient: transientError(error?.code, value) };
}

/** Whether a result line is a failure that may pass on a later attempt (see `lineRetries`). */
export function isTransient(line: ResultLine, batchStatus: string): boolean {
  const { response, error } = line;
  if (response)
    return (
      !(response.status_code >= 200 && response.status_code < 300 && !error) && isRetryableStatus(response.status_code)
    );
  return transientError(error?.code, lineError(error?.code, error?.message, { customId: line.custom_id }, batchStatus));
}

function transientError(code: string | null | undefined, value: unknown): boolean {
  return (
    TRANSIENT_CODES.has(code ?? "") ||
    value instanceof APIConnectionError ||
    (value instanceof APIError && value.status !== undefined && isRetryableStatus(value.status))
  );
}

/** The provider's error inside a non-2xx line body: `{"error":{...}}`, a JSON string of it, or text. */
export function bodyError(body: unknown): { error?: ProviderError; message?: string } {
  if (typeof body === "string") return parseErrorBody(body);
  if (typeof body === "object" && body !== null) return errorFromBody(body) ?? { message: JSON.stringify(body) };
  return {};
}

/**
 * An error-file line with no HTTP response. Doubleword puts a JSON-encoded FailureReason in `message`
 * ({type, details: {status, body}}); OpenAI a plain `{code, message}` (e.g. batch_expired).
 */
export function lineError(
  code: string | null | undefined,
  message: string | null | undefined,
  ctx: { customId: string; batchId?: string },
  batchStatus: string,
): AutoBatchError {
  let reason: { type?: string; details?: { status?: number; body?: unknown; error?: string } } | undefined;
  try {
    const parsed = message ? (JSON.parse(message) as unknown) : undefined;
    if (typeof parsed === "object" && parsed !== null && "type" in parsed) reason = parsed as typeof reason;
  } catch {
    reason = undefined;
  }
  if (!reason) {
    if (code === "batch_expired" || code === "batch_cancelled") {
      return new BatchFailedError(`${code}: ${message ?? "the batch ended before this request ran"}`, {
        ...ctx,
        batchStatus,
      });
    }
    return APIError.generate(
      undefined,
      { message: message ?? "the request failed", code: code ?? null },
      undefined,
      undefined,
      ctx,
    );
  }
  const d = reason.details ?? {};
  if (typeof d.status === "number") {
    const { error, message: text } = bodyError(d.body);
    return APIError.generate(d.status, error, text ?? `${reason.type}`, undefined, ctx);
  }
  if (reason.type === "NetworkError" || reason.type === "Timeout") {
    return new APIConnectionError(`${reason.type}: ${d.error ?? "the provider could not reach the model"}`, ctx);
  }
  return new BatchFailedError(`${reason.type}${d.error ? `: ${d.error}` : ""}`, { ...ctx, batchStatus });
}
