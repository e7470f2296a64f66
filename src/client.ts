// AutoBatcher: the drop-in client. `client.chat.completions.create(params)` and friends look like openai-node's (same
// param and result types, an APIPromise with withResponse()/asResponse()), but every call waits in a buffer and is
// answered from a Batch API result line. The types come from `openai`, an optional peer dependency: imported as
// types only, so AutoBatcher runs without it (see docs/install.md).
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import type { CreateEmbeddingResponse, EmbeddingCreateParams } from "openai/resources/embeddings";
import type { Response, ResponseCreateParamsNonStreaming } from "openai/resources/responses/responses";
import { APIPromise } from "./api-promise.js";
import { BulkJob } from "./core/bulk.js";
import type { BulkOptions, BulkOutcome } from "./core/bulk-types.js";
import { Engine } from "./core/engine.js";
import type { CloseOptions, EngineStats } from "./core/engine-types.js";
import { APIConnectionTimeoutError, type AutoBatchError, InvalidParamsError } from "./errors.js";
import { realClock } from "./internal/clock.js";
import type { Endpoint } from "./internal/endpoints.js";
import type { EventMap, EventName } from "./events.js";
import type { AutoBatcherOptions } from "./options.js";

/**
 * The second argument of `create()`: openai-node's request options, so code written against openai compiles. A
 * batched call has no HTTP request of its own, so only some fields apply.
 */
export interface CallOptions {
  /** Honoured. Aborting before the flush removes the call from its buffer; after, it releases the caller (the batch goes on). */
  signal?: AbortSignal | null;
  /**
   * Honoured: milliseconds this call waits for its result before rejecting with `APIConnectionTimeoutError` (its
   * line stays in its batch). Default: none, the call waits as long as its batch may run.
   */
  timeout?: number;
  /** Passed to the durable store, which answers a repeated key with the first call's result. */
  idempotencyKey?: string;
  /** Not applied: a batched call is not retried per call; Batch API requests retry under the client's `maxRetries`. */
  maxRetries?: number;
  /** Not applied: a batch line carries no headers; use the client's `defaultHeaders` for Batch API requests. */
  headers?: unknown;
  /** Not applied: a batch line carries no query string. */
  query?: unknown;
  /** Not applied: Batch API requests use the client's `dispatcher`. */
  fetchOptions?: unknown;
  /** Not applied (openai-node internals): the endpoint and body come from the method and its params. */
  method?: unknown;
  path?: unknown;
  body?: unknown;
  stream?: unknown;
  defaultBaseURL?: unknown;
}

export type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
  CreateEmbeddingResponse,
  EmbeddingCreateParams,
  Response,
  ResponseCreateParamsNonStreaming,
};

/**
 * One request of a bulk job (`AutoBatcher.bulk`): `params` as `create()` takes them on `endpoint` (default
 * `"/v1/chat/completions"`), and an `id` that names its result, unique among the job's requests not yet answered.
 */
export type BulkRequest =
  | { id: string; endpoint?: "/v1/chat/completions"; params: ChatCompletionCreateParamsNonStreaming }
  | { id: string; endpoint: "/v1/embeddings"; params: EmbeddingCreateParams }
  | { id: string; endpoint: "/v1/responses"; params: ResponseCreateParamsNonStreaming };

/** What `create()` on a request's endpoint resolves with. */
export type BulkResultOf<R extends BulkRequest> = R extends { endpoint: "/v1/embeddings" }
  ? CreateEmbeddingResponse
  : R extends { endpoint: "/v1/responses" }
    ? Response
    : ChatCompletion;

/**
 * One result of a bulk job, in completion order: `result` is what `create()` would resolve with, `error` the typed
 * error it would reject with (an APIError subclass, BatchFailedError, InvalidParamsError…).
 */
export type BulkResult<T = ChatCompletion | CreateEmbeddingResponse | Response> = BulkOutcome<T, AutoBatchError>;

/**
 * An openai-node-shaped client whose calls are answered through the Batch API: each call waits in a buffer, goes out
 * in a batch file, and settles when its result line arrives (minutes to hours later, at the batch price).
 *
 * @example
 * ```ts
 * import { AutoBatcher } from "autobatch";
 *
 * const client = new AutoBatcher({ batchWindowMs: 5_000 }); // key and URL from OPENAI_API_KEY, OPENAI_BASE_URL
 * const answers = await Promise.all(
 *   ["Name a prime.", "Name a colour."].map((content) =>
 *     client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content }] }),
 *   ),
 * ); // one batch of two lines
 * await client.close();
 * ```
 */
export class AutoBatcher {
  readonly #engine: Engine;

  readonly chat: {
    readonly completions: {
      create(params: ChatCompletionCreateParamsNonStreaming, options?: CallOptions): APIPromise<ChatCompletion>;
    };
  };
  readonly embeddings: {
    create(params: EmbeddingCreateParams, options?: CallOptions): APIPromise<CreateEmbeddingResponse>;
  };
  readonly responses: {
    create(params: ResponseCreateParamsNonStreaming, options?: CallOptions): APIPromise<Response>;
  };

  constructor(options?: AutoBatcherOptions) {
    this.#engine = new Engine(options);
    const facade =
      <P, R>(endpoint: Endpoint) =>
      (params: P, options?: CallOptions): APIPromise<R> =>
        options?.timeout === undefined
          ? (this.#engine.submit(endpoint, params, {
              signal: options?.signal,
              idempotencyKey: options?.idempotencyKey,
              promiseClass: APIPromise as PromiseConstructor,
            }) as APIPromise<R>)
          : this.#submitWithTimeout<R>(endpoint, params, options.timeout, options.signal, options.idempotencyKey);
    this.chat = {
      completions: { create: facade<ChatCompletionCreateParamsNonStreaming, ChatCompletion>("/v1/chat/completions") },
    };
    this.embeddings = { create: facade<EmbeddingCreateParams, CreateEmbeddingResponse>("/v1/embeddings") };
    this.responses = { create: facade<ResponseCreateParamsNonStreaming, Response>("/v1/responses") };
  }

  /** A call with its own deadline: an extra signal the clock aborts, and the abort reported as a timeout. */
  #submitWithTimeout<R>(
    endpoint: Endpoint,
    params: unknown,
    timeout: number,
    signal?: AbortSignal | null,
    idempotencyKey?: string,
  ) {
    if (!Number.isFinite(timeout) || timeout <= 0)
      return APIPromise.reject(
        new InvalidParamsError(`timeout must be a positive number of milliseconds (got ${timeout})`, "timeout"),
      ) as APIPromise<R>;
    const clock = this.#engine.options.clock ?? realClock;
    const deadline = new AbortController();
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      deadline.abort();
    }, timeout);
    const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    const call = this.#engine.submit(endpoint, params, { signal: combined, idempotencyKey });
    return new APIPromise<R>((resolve, reject) => {
      call.then(
        (value) => {
          clock.clearTimeout(timer);
          resolve(value as never);
        },
        (err: unknown) => {
          clock.clearTimeout(timer);
          reject(timedOut ? new APIConnectionTimeoutError() : err);
        },
      );
    });
  }

  /**
   * Sends many requests without a promise each: `requests` (an array, a generator, a stream…) is read as the job
   * goes, and the results come back as they settle, in completion order, each under its request's `id`. A request
   * that fails is a result with `ok: false`, never a rejection; bad params are such a result too.
   *
   * Reading pauses at `maxQueued` (see BulkOptions), so a stream of millions is never held whole. Leaving the loop
   * early (`break`, `return()`, an exception, or `signal`) stops reading and releases every request of the job not
   * yet answered: those still buffered never go out; those already in a batch are let go while the batch runs
   * on upstream. Nothing is left waiting and nothing rejects unhandled. The iterator throws (after the results already in) when the job cannot go
   * on: an id repeated while the first is unanswered (InvalidParamsError naming it), the input throwing (its error),
   * `signal` aborted (APIUserAbortError), or the client closed before the input was read whole (ClientClosedError).
   *
   * @example
   * ```ts
   * const requests = prompts.map((content, i) => ({
   *   id: `q${i}`,
   *   params: { model: "gpt-4o-mini", messages: [{ role: "user" as const, content }] },
   * }));
   * for await (const r of client.bulk(requests)) {
   *   if (r.ok) console.log(r.id, r.result.choices[0]?.message.content);
   *   else console.error(r.id, r.error.message);
   * }
   * ```
   */
  bulk<R extends BulkRequest>(
    requests: Iterable<R> | AsyncIterable<R>,
    options?: BulkOptions,
  ): AsyncIterableIterator<BulkResult<BulkResultOf<R>>> {
    return new BulkJob(this.#engine, requests, options) as AsyncIterableIterator<never>;
  }

  /** Subscribes to a lifecycle event; returns a function that unsubscribes. */
  on<K extends EventName>(name: K, listener: (payload: EventMap[K]) => void): () => void {
    return this.#engine.events.on(name, listener);
  }

  /** Calls buffered, submitting, batches running, calls pending, batches created, bytes read. */
  get stats(): EngineStats {
    return this.#engine.stats;
  }

  /** Resolves when no call is waiting. */
  onIdle(): Promise<void> {
    return this.#engine.onIdle();
  }

  /** Flushes what is buffered and waits for every call to settle. `{ cancel: true }`: cancel upstream and reject instead. */
  close(options?: CloseOptions): Promise<void> {
    return this.#engine.close(options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
