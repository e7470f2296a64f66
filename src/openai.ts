// BatchOpenAI (`autobatch/openai`): openai-node's own `OpenAI` class with a batching fetch underneath. Its batchable
// calls (`POST /chat/completions`, `/embeddings`, `/responses`, streaming ones included) wait for a Batch API
// result; every other call (files, batches, models, ...) goes to the provider in real time. Being a real subclass,
// it passes wherever an `OpenAI` is expected, and openai-node keeps doing the parsing, errors and helpers.
import { OpenAI, type ClientOptions } from "openai";
import type { CloseOptions, EngineStats } from "./core/engine-types.js";
import type { EventMap, EventName } from "./events.js";
import { BATCHED_PATHS, createBatchingFetch, type BatchingFetch, type BatchingFetchOptions } from "./fetch.js";
import { DEFAULTS, InvalidOptionsError } from "./options.js";
import { windowToMs } from "./options-resolve.js";
import { optionsSchema } from "./options-schema.js";

/** Options whose names openai's client options also use; BatchOpenAI gives each one meaning (see below). */
type SharedName = "apiKey" | "baseURL" | "organization" | "project" | "defaultHeaders" | "maxRetries" | "fetch";

/**
 * openai's client options plus every AutoBatcher option. Where both use a name, one value serves both: `apiKey`
 * (a string here: the batcher signs Batch API requests itself), `baseURL`, `organization`, `project`,
 * `defaultHeaders` (also sent on Batch API requests) and `fetch` (the real fetch behind both). `maxRetries` and
 * `timeout` are openai's, per call; the Batch API requests' own retry count is `batchMaxRetries`.
 */
export interface BatchOpenAIOptions extends ClientOptions, Omit<BatchingFetchOptions, SharedName> {
  /** AutoBatcher's `maxRetries`: retries per Batch API request (upload, create, poll, download). Default 5. */
  batchMaxRetries?: number;
}

/** openai's internal per-request options (not exported by name): what `prepareOptions` receives. */
type FinalRequestOptions = Parameters<OpenAI["buildRequest"]>[0];

const SHARED = Symbol("autobatch.sharedBatchingFetch");
const BATCHER_KEYS = new Set<string>([
  ...Object.keys(optionsSchema.shape).filter((k) => !["apiKey", "baseURL", "organization", "project"].includes(k)),
  "streaming",
]);
/** Node's timers fire at once past this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class BatchOpenAI extends OpenAI {
  readonly #batching: BatchingFetch;
  readonly #batchTimeoutMs: number;

  constructor(options: BatchOpenAIOptions = {}) {
    const { clientOptions, batching, batchTimeoutMs } = BatchOpenAI.#split(options);
    super(clientOptions);
    this.#batching = batching;
    this.#batchTimeoutMs = batchTimeoutMs;
  }

  static #split(options: BatchOpenAIOptions) {
    const shared = (options as { [SHARED]?: { batching: BatchingFetch; batchTimeoutMs: number } })[SHARED];
    const clientOptions: Record<string, unknown> = {};
    const batcherOptions: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(options)) {
      if (BATCHER_KEYS.has(key) && key !== "maxRetries" && key !== "defaultHeaders") batcherOptions[key] = value;
      else if (key === "batchMaxRetries") batcherOptions.maxRetries = value;
      else clientOptions[key] = value;
    }
    if (shared) return { clientOptions: { ...clientOptions, fetch: shared.batching }, ...shared };
    const { apiKey } = options;
    if (apiKey != null && typeof apiKey !== "string") {
      throw new InvalidOptionsError(
        "Invalid BatchOpenAI options:\n  apiKey: must be a string (the batcher signs Batch API requests itself)",
        [{ path: ["apiKey"], message: "must be a string" }],
      );
    }
    const batching = createBatchingFetch({
      ...batcherOptions,
      apiKey: apiKey ?? undefined,
      baseURL: options.baseURL ?? undefined,
      organization: options.organization ?? undefined,
      project: options.project ?? undefined,
      defaultHeaders: plainHeaders(options.defaultHeaders),
      fetch: options.fetch as BatchingFetchOptions["fetch"],
    });
    const window = windowToMs(String(batcherOptions.completionWindow ?? DEFAULTS.completionWindow));
    const grace = Number(batcherOptions.deadlineGraceMs ?? DEFAULTS.deadlineGraceMs);
    const batchTimeoutMs = Math.min(window === undefined ? MAX_TIMER_MS : window + grace, MAX_TIMER_MS);
    return {
      // The SDK must call the same base URL the batcher matches, or nothing would be batched.
      clientOptions: { ...clientOptions, baseURL: batching.baseURL, fetch: batching },
      batching,
      batchTimeoutMs,
    };
  }

  /**
   * A batched call without its own `timeout` may wait as long as its batch may run (the completion window plus
   * `deadlineGraceMs`), not the client's `timeout`, which real-time calls keep.
   */
  protected override async prepareOptions(options: FinalRequestOptions): Promise<void> {
    await super.prepareOptions(options);
    if (options.timeout === undefined && options.method === "post" && BATCHED_PATHS.has(options.path))
      options.timeout = this.#batchTimeoutMs;
  }

  /** A client with some options changed that shares this one's batcher (its buffers, batches and `close()`). */
  override withOptions(options: Partial<ClientOptions>): this {
    const shared = { batching: this.#batching, batchTimeoutMs: this.#batchTimeoutMs };
    return super.withOptions({ ...options, [SHARED]: shared } as Partial<ClientOptions>);
  }

  /** Subscribes to a lifecycle event; returns a function that unsubscribes. */
  on<K extends EventName>(name: K, listener: (payload: EventMap[K]) => void): () => void {
    return this.#batching.on(name, listener);
  }

  /** Calls buffered, submitting, batches running, calls pending, batches created, bytes read. */
  get stats(): EngineStats {
    return this.#batching.stats;
  }

  /** Resolves when no batched call is waiting. */
  onIdle(): Promise<void> {
    return this.#batching.onIdle();
  }

  /**
   * Flushes what is buffered and waits for every batched call; `{ cancel: true }` cancels instead. Calls made
   * before `close()` are included: openai-node reaches the fetch a few promise turns after `create()` returns, so
   * the close waits one event-loop turn for them first.
   */
  async close(options?: CloseOptions): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.#batching.close(options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** openai's header forms (object, Headers, pairs; `null` removes) as the plain record the batcher takes. */
function plainHeaders(headers: ClientOptions["defaultHeaders"]): Record<string, string> | undefined {
  if (headers == null) return undefined;
  if (headers instanceof Headers || Array.isArray(headers)) {
    const out: Record<string, string> = {};
    new Headers(headers as HeadersInit).forEach((value, name) => {
      out[name] = value;
    });
    return out;
  }
  return Object.fromEntries(
    Object.entries(headers as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === "string"),
  );
}
