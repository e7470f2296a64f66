// createBatchingFetch(): a `fetch` for clients that accept one (openai-node, the Vercel AI SDK, LangChain.js).
// `POST {baseURL}/chat/completions|embeddings|responses` goes into the same core as AutoBatcher, in raw mode, and
// comes back as a Response built from the call's result line, so the SDK parses and shapes it as usual and raises
// its own error classes. Every other request goes to the real fetch untouched.
import { Engine } from "./core/engine.js";
import type { CloseOptions, EngineStats } from "./core/engine-types.js";
import type { RawResult } from "./core/call.js";
import type { Endpoint } from "./internal/endpoints.js";
import {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  AutoBatchError,
  BatchFailedError,
  InvalidParamsError,
} from "./errors.js";
import type { EventMap, EventName } from "./events.js";
import { resultToSSE, splitStream } from "./internal/sse.js";
import type { AutoBatcherOptions } from "./options.js";

/** The `fetch` signature openai-node, the AI SDK and LangChain.js accept. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Options of `createBatchingFetch()`: every AutoBatcher option plus where the rest goes. */
export interface BatchingFetchOptions extends AutoBatcherOptions {
  /**
   * Where every request that is not batched goes.
   * @default globalThis.fetch, read at call time
   */
  fetch?: FetchLike;
  /**
   * What a batchable request with `stream: true` gets. `"batch"` (default): it is batched like any other call and,
   * once its result is in, answered as the SSE stream the provider would have sent (the whole answer at once), so
   * streaming code (the AI SDK's `streamText`, LangChain's `.stream()`) works unchanged. `"reject"`: a 400 that says
   * why. `"passthrough"`: sent unbatched to the real fetch, streamed live at real-time price.
   * @default "batch"
   */
  streaming?: "batch" | "reject" | "passthrough";
}

export interface BatchingFetch extends FetchLike {
  /** The resolved base URL (with `/v1`): give the SDK this same URL, or its requests pass through unbatched. */
  readonly baseURL: string;
  /** Calls buffered, submitting, batches running, calls pending, batches created, bytes read. */
  readonly stats: EngineStats;
  /** Subscribes to a lifecycle event; returns a function that unsubscribes. */
  on<K extends EventName>(name: K, listener: (payload: EventMap[K]) => void): () => void;
  /** Resolves when no batched call is waiting. */
  onIdle(): Promise<void>;
  /** Flushes what is buffered and waits for it; `{ cancel: true }` cancels instead. Pass-through keeps working. */
  close(options?: CloseOptions): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const ROUTES: Record<string, Endpoint> = {
  "/chat/completions": "/v1/chat/completions",
  "/embeddings": "/v1/embeddings",
  "/responses": "/v1/responses",
};
/** The paths below baseURL whose `POST`s are batched. */
export const BATCHED_PATHS: ReadonlySet<string> = new Set(Object.keys(ROUTES));

/**
 * Status for failures that have no provider status of their own (the batch failed, expired or was cancelled; the
 * line was unreadable; the fetch was closed; bad params). 400 is the one status that openai-node, the AI SDK
 * (retries 408/409/429/5xx, ignores `x-should-retry`) and LangChain.js (retries all but 400–407/409/413) all leave
 * alone: a retry would be another batch and another wait, so the caller decides.
 */
const NO_RETRY_STATUS = 400;
/** The Response constructor refuses a body with these. */
const NULL_BODY_STATUSES = new Set([204, 205]);

const STREAMING_MODES: readonly unknown[] = ["batch", "reject", "passthrough"];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isRequestLike(input: unknown): input is Request {
  return (
    typeof input === "object" &&
    input !== null &&
    !(input instanceof URL) &&
    typeof (input as Request).url === "string" &&
    typeof (input as Request).method === "string"
  );
}

/**
 * A `fetch` to hand to openai-node, the Vercel AI SDK or LangChain.js: their chat, embeddings and responses calls
 * below `baseURL` are batched; every other request goes to the real fetch. Give the SDK the same `baseURL`.
 *
 * @example
 * ```ts
 * import OpenAI from "openai";
 * import { createBatchingFetch } from "autobatch";
 *
 * const fetch = createBatchingFetch({ baseURL: "https://api.openai.com/v1" });
 * const openai = new OpenAI({ baseURL: fetch.baseURL, fetch, maxRetries: 0 });
 * const reply = await openai.chat.completions.create({
 *   model: "gpt-4o-mini",
 *   messages: [{ role: "user", content: "Hi" }],
 * });
 * await fetch.close();
 * ```
 */
export function createBatchingFetch(options: BatchingFetchOptions = {}): BatchingFetch {
  const { fetch: passthrough, streaming = "batch", ...engineOptions } = options;
  if (!STREAMING_MODES.includes(streaming))
    throw new TypeError(`streaming must be "batch", "reject" or "passthrough" (got ${JSON.stringify(streaming)})`);
  const engine = new Engine(engineOptions);
  const base = new URL(engine.options.baseURL);
  const basePath = base.pathname.replace(/\/+$/, "");
  const realFetch: FetchLike = (input, init) => (passthrough ?? globalThis.fetch)(input, init);

  const batchingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // Duck-typed: a Request from another fetch implementation (another undici copy) is still a Request.
    const request = isRequestLike(input) ? input : undefined;
    const method = (init?.method ?? request?.method ?? "GET").toUpperCase();
    const endpoint = method === "POST" ? match(request?.url ?? String(input)) : undefined;
    if (!endpoint) return realFetch(input, init);

    const text = await bodyText(request, init);
    let params: unknown;
    try {
      params = JSON.parse(text);
    } catch {
      return errorResponse(NO_RETRY_STATUS, {
        message: `the request body for ${endpoint} is not JSON`,
        type: "invalid_request_error",
        param: null,
        code: null,
      });
    }
    const wantsStream = isObject(params) && params.stream === true;
    if (wantsStream && streaming === "passthrough") {
      // The body may have been a one-shot stream: hand the text we read to the real fetch.
      return realFetch(input, { ...init, body: text });
    }
    const split = wantsStream && streaming === "batch" && isObject(params) ? splitStream(params) : undefined;
    const signal = init?.signal ?? request?.signal ?? undefined;
    try {
      const raw = (await engine.submit(endpoint, split?.params ?? params, { signal, raw: true })) as RawResult;
      return split ? streamResponse(endpoint, raw, split.includeUsage) : resultResponse(raw);
    } catch (err) {
      if (err instanceof APIUserAbortError) throw abortReason(signal);
      return failureResponse(err);
    }
  };

  function match(url: string): Endpoint | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    if (parsed.origin !== base.origin || !parsed.pathname.startsWith(basePath)) return undefined;
    return ROUTES[parsed.pathname.slice(basePath.length).replace(/\/+$/, "")];
  }

  const fn = Object.assign(batchingFetch, {
    baseURL: engine.options.baseURL,
    on: <K extends EventName>(name: K, listener: (payload: EventMap[K]) => void) => engine.events.on(name, listener),
    onIdle: () => engine.onIdle(),
    close: (closeOptions?: CloseOptions) => engine.close(closeOptions),
    [Symbol.asyncDispose]: () => engine.close(),
  });
  // A getter, so `stats` is read live (Object.assign would copy one snapshot).
  return Object.defineProperty(fn, "stats", { get: () => engine.stats, enumerable: true }) as typeof fn & {
    readonly stats: EngineStats;
  };
}

async function bodyText(request: Request | undefined, init: RequestInit | undefined): Promise<string> {
  const body = init?.body;
  if (typeof body === "string") return body;
  if (body != null) return new Response(body).text();
  // A Request's body stays readable for a pass-through: read a copy.
  return request ? request.clone().text() : "";
}

/** A 2xx result re-wrapped as SSE; an error line stays JSON, as a provider answers a failed stream request. */
function streamResponse(endpoint: Endpoint, raw: RawResult, includeUsage: boolean): Response {
  if (raw.status < 200 || raw.status >= 300) return resultResponse(raw);
  const headers = callHeaders(raw.customId, raw.batchId, raw.requestId);
  headers.set("content-type", "text/event-stream; charset=utf-8");
  headers.set("cache-control", "no-cache");
  return new Response(resultToSSE(endpoint, raw.body, includeUsage), { status: raw.status, headers });
}

function resultResponse(raw: RawResult): Response {
  const headers = callHeaders(raw.customId, raw.batchId, raw.requestId);
  if (NULL_BODY_STATUSES.has(raw.status)) return new Response(null, { status: raw.status, headers });
  return new Response(typeof raw.body === "string" ? raw.body : JSON.stringify(raw.body ?? null), {
    status: raw.status,
    headers,
  });
}

/** Maps a core rejection to what the SDK would have received from a real-time call. */
function failureResponse(err: unknown): Response {
  if (err instanceof APIConnectionError && err.batchId === undefined) {
    // The Batch API itself was unreachable (after the core's retries): what undici's fetch does when it cannot
    // reach a server, so each SDK raises its connection error.
    throw new TypeError("fetch failed", { cause: err });
  }
  if (!(err instanceof AutoBatchError)) throw err;
  const headers = callHeaders(err.customId, err.batchId, err instanceof APIError ? err.requestID : undefined);
  headers.set("x-autobatch-error", err.name);
  if (err instanceof APIError && err.status !== undefined) {
    // The provider's own answer. For this line, its status stands and the SDK's retry policy applies as for a
    // real-time call; for the upload or create of the batch, the core has already retried.
    if (err.batchId === undefined) headers.set("x-should-retry", "false");
    return errorResponse(
      err.status,
      err.error ?? { message: stripStatus(err), type: null, param: null, code: null },
      headers,
    );
  }
  if (err instanceof APIConnectionError) {
    // This line's request could not reach the model (a provider-side network error or timeout): a gateway error,
    // which the SDK retries or not as it would for a real-time call.
    return errorResponse(
      502,
      { message: err.message, type: "upstream_error", param: null, code: "upstream_connection_error" },
      headers,
    );
  }
  headers.set("x-should-retry", "false");
  const error =
    err instanceof InvalidParamsError
      ? { message: err.message, type: "invalid_request_error", param: err.param ?? null, code: null }
      : err instanceof BatchFailedError
        ? { message: err.message, type: "batch_error", param: null, code: `batch_${err.batchStatus ?? "failed"}` }
        : err instanceof APIError && err.error
          ? err.error
          : { message: err.message, type: "batch_error", param: null, code: null };
  return errorResponse(NO_RETRY_STATUS, error, headers);
}

function errorResponse(status: number, error: object, headers = new Headers()): Response {
  headers.set("content-type", "application/json");
  return new Response(JSON.stringify({ error }), { status, headers });
}

function callHeaders(
  customId: string | undefined,
  batchId: string | undefined,
  requestId: string | null | undefined,
): Headers {
  const headers = new Headers({ "content-type": "application/json" });
  if (requestId) headers.set("x-request-id", requestId);
  if (customId) headers.set("x-autobatch-custom-id", customId);
  if (batchId) headers.set("x-autobatch-batch-id", batchId);
  return headers;
}

function stripStatus(err: APIError): string {
  const prefix = `${err.status} `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

/** As the real fetch: reject with the signal's reason, by default a DOMException named AbortError. */
function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException("This operation was aborted", "AbortError");
}
