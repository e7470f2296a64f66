// Every failure the proxy answers, and how it is written: an HTTP status plus OpenAI's
// `{"error":{message,type,param,code}}` body, so SDKs raise their usual error classes. `retry: false` adds
// `x-should-retry: false`: openai-node obeys it, and a resubmission would only pay again for an answer that cannot
// change.
import type { ServerResponse } from "node:http";
import {
  APIConnectionError,
  AutoBatchError,
  APIConnectionTimeoutError,
  APIError,
  BatchFailedError,
  ClientClosedError,
  InvalidParamsError,
  ResultParseError,
  type ProviderError,
} from "../errors.js";

export interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
  [key: string]: unknown;
}

/** An error response ready to send. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    error: Partial<ErrorBody> & { message: string },
    options: { retry?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(error.message);
    this.status = status;
    this.body = {
      ...error,
      message: error.message,
      type: error.type ?? typeFor(status),
      param: error.param ?? null,
      code: error.code ?? null,
    };
    this.headers = { ...options.headers, ...(options.retry === false && { "x-should-retry": "false" }) };
  }
}

function typeFor(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 429) return "rate_limit_exceeded";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

/** Batch statuses after which the batch was given up on while still running (deadline passed, status unreadable). */
const STILL_RUNNING = new Set(["validating", "in_progress", "finalizing", "cancelling"]);

/** Maps whatever `engine.submit` rejected with (or anything thrown while handling a request) to a response. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof InvalidParamsError) {
    return new HttpError(
      400,
      { message: err.message, param: err.param ?? null, code: "invalid_params" },
      { retry: false },
    );
  }
  if (err instanceof BatchFailedError) {
    const status = err.batchStatus === "expired" || STILL_RUNNING.has(err.batchStatus ?? "") ? 504 : 502;
    return new HttpError(
      status,
      { message: err.message, type: "server_error", code: `batch_${err.batchStatus ?? "failed"}` },
      { retry: false },
    );
  }
  if (err instanceof ResultParseError) {
    // The line ran (and was billed); a retry would run it again for the same unreadable kind of answer.
    return new HttpError(
      502,
      { message: err.message, type: "server_error", code: "unreadable_result" },
      { retry: false },
    );
  }
  if (err instanceof ClientClosedError) {
    return new HttpError(503, {
      message: `the proxy is shutting down: ${err.message}`,
      type: "server_error",
      code: "shutting_down",
    });
  }
  if (err instanceof APIConnectionTimeoutError)
    return new HttpError(504, { message: err.message, code: "upstream_timeout" });
  if (err instanceof APIConnectionError)
    return new HttpError(502, { message: err.message, code: "upstream_connection_error" });
  if (err instanceof APIError && err.status !== undefined) {
    // A per-call failure: the line's own status and the provider's own error object, untouched.
    return new HttpError(clientErrorStatus(err.status), providerError(err.error, err.message));
  }
  if (err instanceof APIError)
    return new HttpError(502, { ...providerError(err.error, err.message), type: "server_error" });
  return new HttpError(500, {
    message: `internal error: ${err instanceof Error ? err.message : String(err)}`,
    code: "internal_error",
  });
}

function providerError(error: ProviderError | undefined, fallback: string): Partial<ErrorBody> & { message: string } {
  if (!error) return { message: fallback };
  return {
    ...error,
    message: error.message ?? fallback,
    type: error.type ?? undefined,
    param: error.param ?? null,
    code: error.code ?? null,
  };
}

/**
 * The status a failed line's `status_code` is answered with. The provider chooses it, and one that is not an error
 * status would mislead clients (or, outside 100–999, make Node throw while writing it): those become 502.
 */
export function clientErrorStatus(status: number): number {
  return Number.isInteger(status) && status >= 400 && status <= 599 ? status : 502;
}

/** Seconds a client refused for load is asked to wait: held requests free up as batches finish. */
const OVERLOAD_RETRY_AFTER_S = 5;

export function overloaded(max: number): HttpError {
  return new HttpError(
    503,
    {
      message: `The proxy is holding its maximum of ${max} waiting requests (maxWaitingRequests); retry after ${OVERLOAD_RETRY_AFTER_S} s.`,
      type: "server_error",
      code: "too_many_waiting_requests",
    },
    { headers: { "retry-after": String(OVERLOAD_RETRY_AFTER_S), "x-should-retry": "true", connection: "close" } },
  );
}

/** Answers `err`; never throws (it runs in the handler's last `.catch`), cutting the connection if it cannot write. */
export function sendError(
  ctx: { closing: boolean },
  res: ServerResponse,
  err: unknown,
  trace: Record<string, unknown>,
): void {
  try {
    if (res.destroyed || res.headersSent) return void res.destroy();
    const e = toHttpError(err);
    const headers: Record<string, string> = { ...e.headers, "content-type": "application/json" };
    if (err instanceof AutoBatchError) {
      if (err.customId) headers["x-autobatch-custom-id"] = trace.customId = err.customId;
      if (err.batchId) headers["x-autobatch-batch-id"] = trace.batchId = err.batchId;
    }
    trace.error = e.message;
    res.writeHead(e.status, withClosing(ctx, headers)).end(JSON.stringify({ error: e.body }));
  } catch (writeErr) {
    trace.sendFailed = writeErr instanceof Error ? writeErr.message : String(writeErr);
    res.destroy();
  }
}

/** Asks the client to close its connection while the proxy shuts down. */
export function withClosing(ctx: { closing: boolean }, headers: Record<string, string>): Record<string, string> {
  return ctx.closing ? { ...headers, connection: "close" } : headers;
}
