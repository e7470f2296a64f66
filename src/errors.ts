// Error classes. Names, fields and messages mirror openai-node's (`OpenAIError` root, `APIError` with
// status/headers/error/code/param/type/requestID, its status subclasses, `"${status} ${message}"`), so code that
// branches on them keeps working; every error also says which call (`customId`) and which batch (`batchId`) it
// concerns. `openai` is not a runtime dependency, so `instanceof OpenAI.APIError` is false: use `isAPIError()` or
// our classes. (Behind `createBatchingFetch()` the SDK raises its own classes from the synthesized responses.)

export interface ErrorContext {
  customId?: string;
  batchId?: string;
}

/** Root of every error autobatch throws or rejects with. Also exported as `OpenAIError`, openai-node's name for its root. */
export class AutoBatchError extends Error {
  override name = "AutoBatchError";
  customId?: string;
  batchId?: string;
  constructor(message: string, context: ErrorContext & { cause?: unknown } = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.customId = context.customId;
    this.batchId = context.batchId;
  }
}

/** The provider's error object, as in `{"error": {...}}`. */
export interface ProviderError {
  message?: string;
  type?: string | null;
  param?: string | null;
  code?: string | null;
  [key: string]: unknown;
}

export class APIError extends AutoBatchError {
  override name = "APIError";
  /** HTTP status of the failed request or result line. */
  readonly status: number | undefined;
  readonly headers: Headers | undefined;
  /** The inner `error` object of the provider's body, when it had one. */
  readonly error: ProviderError | undefined;
  readonly code: string | null | undefined;
  readonly param: string | null | undefined;
  readonly type: string | undefined;
  readonly requestID: string | null | undefined;

  constructor(
    status: number | undefined,
    error: ProviderError | undefined,
    message: string | undefined,
    headers?: Headers,
    context: ErrorContext & { requestID?: string | null; cause?: unknown } = {},
  ) {
    super(APIError.makeMessage(status, error, message), context);
    this.status = status;
    this.headers = headers;
    this.error = error;
    this.code = error?.code;
    this.param = error?.param;
    this.type = error?.type ?? undefined;
    this.requestID = context.requestID ?? headers?.get("x-request-id");
  }

  /** openai-node's rule: the provider's message (or the whole error object), prefixed with the status. */
  private static makeMessage(
    status: number | undefined,
    error: ProviderError | undefined,
    message: string | undefined,
  ): string {
    const msg = error?.message
      ? typeof error.message === "string"
        ? error.message
        : JSON.stringify(error.message)
      : error
        ? JSON.stringify(error)
        : message;
    // A message taken from an error that already carries the prefix (a rethrown APIError) keeps a single one.
    if (status && msg) return msg.startsWith(`${status} `) ? msg : `${status} ${msg}`;
    if (status) return `${status} status code (no body)`;
    return msg || "(no status code or body)";
  }

  /** Picks the subclass for a status, as openai-node's `APIError.generate` does. */
  static generate(
    status: number | undefined,
    error: ProviderError | undefined,
    message: string | undefined,
    headers?: Headers,
    context: ErrorContext & { requestID?: string | null; cause?: unknown } = {},
  ): APIError {
    const Class =
      status === undefined ? APIError : (STATUS_CLASSES[status] ?? (status >= 500 ? InternalServerError : APIError));
    return new Class(status, error, message, headers, context);
  }
}

// `declare` narrows `status` for code that switches on the class, as openai-node's generics do; nothing is emitted.
export class BadRequestError extends APIError {
  override name = "BadRequestError";
  declare readonly status: 400;
}
export class AuthenticationError extends APIError {
  override name = "AuthenticationError";
  declare readonly status: 401;
}
export class PermissionDeniedError extends APIError {
  override name = "PermissionDeniedError";
  declare readonly status: 403;
}
export class NotFoundError extends APIError {
  override name = "NotFoundError";
  declare readonly status: 404;
}
export class ConflictError extends APIError {
  override name = "ConflictError";
  declare readonly status: 409;
}
export class UnprocessableEntityError extends APIError {
  override name = "UnprocessableEntityError";
  declare readonly status: 422;
}
export class RateLimitError extends APIError {
  override name = "RateLimitError";
  declare readonly status: 429;
}
export class InternalServerError extends APIError {
  override name = "InternalServerError";
  declare readonly status: number;
}

const STATUS_CLASSES: Record<number, typeof APIError> = {
  400: BadRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  422: UnprocessableEntityError,
  429: RateLimitError,
};

/** The caller's `signal` aborted (before its flush, or while its batch ran: the batch goes on). */
export class APIUserAbortError extends APIError {
  override name = "APIUserAbortError";
  declare readonly status: undefined;
  constructor(context: ErrorContext & { message?: string } = {}) {
    super(undefined, undefined, context.message ?? "Request was aborted.", undefined, context);
  }
}

/** A Batch API request could not reach the provider (after retries). */
export class APIConnectionError extends APIError {
  override name = "APIConnectionError";
  declare readonly status: undefined;
  constructor(message = "Connection error.", context: ErrorContext & { cause?: unknown } = {}) {
    super(undefined, undefined, message, undefined, context);
  }
}

export class APIConnectionTimeoutError extends APIConnectionError {
  override name = "APIConnectionTimeoutError";
  constructor(message = "Request timed out.", context: ErrorContext & { cause?: unknown } = {}) {
    super(message, context);
  }
}

/** The call's params were rejected before reaching any batch. `param` names the offending field. */
export class InvalidParamsError extends AutoBatchError {
  override name = "InvalidParamsError";
  readonly param: string | undefined;
  constructor(message: string, param?: string) {
    super(message);
    this.param = param;
  }
}

/** The batch ended (or was given up on) without a result line for this call. */
export class BatchFailedError extends AutoBatchError {
  override name = "BatchFailedError";
  /** The batch's last known status, e.g. "failed", "expired", "cancelled". */
  readonly batchStatus: string | undefined;
  readonly status: number | undefined = undefined;
  constructor(message: string, context: ErrorContext & { batchStatus?: string; cause?: unknown }) {
    super(message, context);
    this.batchStatus = context.batchStatus;
  }
}

/** The call's result line was present but could not be read. */
export class ResultParseError extends AutoBatchError {
  override name = "ResultParseError";
  readonly status: number | undefined = undefined;
}

/** The client was closed: new calls are refused; with `close({ cancel: true })`, waiting calls are released. */
export class ClientClosedError extends AutoBatchError {
  override name = "ClientClosedError";
}

export { AutoBatchError as OpenAIError };

/** True for autobatch's `APIError` and its subclasses (an `instanceof` that reads well in a `catch`). */
export function isAPIError(err: unknown): err is APIError {
  return err instanceof APIError;
}
