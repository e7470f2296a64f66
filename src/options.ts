// AutoBatcher's options as users see them: the documented interface and its defaults. The schema that checks them
// is in options-schema.ts, the resolution (defaults and env applied) in options-resolve.ts.
import type { Readable } from "node:stream";
import type { Clock } from "./internal/clock.js";
import type { AutoBatchEvent } from "./events.js";

const MB = 1_000_000;

/**
 * What autobatch calls on a `dispatcher`: undici's `request()` method. Every undici 7 and 8 `Agent`, `ProxyAgent`,
 * `Pool` and `Client` has it, so the option does not depend on the undici major autobatch itself uses.
 */
export interface DispatcherLike {
  request(options: {
    origin: string;
    path: string;
    method: "GET" | "POST" | "DELETE";
    headers: Record<string, string>;
    body?: string | Readable;
    signal?: AbortSignal;
    headersTimeout: number;
    bodyTimeout: number;
  }): Promise<{ statusCode: number; body: Readable & { text(): Promise<string> } }>;
}

/** The values of `requestIdentity` (serve's option takes the same). */
export type RequestIdentity = "fingerprint" | "keys" | "adopt";

/** The defaults of AutoBatcherOptions, applied by resolveOptions() and nowhere else. */
export const DEFAULTS = {
  baseURL: "https://api.openai.com/v1",
  batchSize: 1000,
  maxBatchBytes: 95 * MB,
  batchWindowMs: 10_000,
  pollIntervalMs: 5_000,
  completionWindow: "24h",
  maxRetries: 5,
  retryDeadlineMs: 120_000,
  maxConcurrency: 8,
  requestTimeoutMs: 300_000,
  requestDeadlineMs: 900_000,
  maxResponseBytes: 10 * MB,
  maxResultLineBytes: 100 * MB,
  deadlineGraceMs: 3_600_000,
  lineRetries: 2,
  maxBuffers: 100,
  storeRetentionMs: 7 * 24 * 3_600_000,
  requestIdentity: "fingerprint",
} as const;

/**
 * Options of `new AutoBatcher()` and `createBatchingFetch()`. Every field is optional; unset ones take the default
 * below (the values live in `DEFAULTS`). Checked at construction: a wrong value throws InvalidOptionsError.
 */
export interface AutoBatcherOptions {
  /**
   * Bearer key for the provider. Sent only to `baseURL`'s origin; never logged or put in events or errors.
   * @default process.env.OPENAI_API_KEY
   */
  apiKey?: string;
  /**
   * Provider base URL including `/v1`, e.g. "https://api.doubleword.ai/v1".
   * @default process.env.OPENAI_BASE_URL, else "https://api.openai.com/v1"
   */
  baseURL?: string;
  /**
   * Sent as the `OpenAI-Organization` header.
   * @default process.env.OPENAI_ORG_ID
   */
  organization?: string;
  /**
   * Sent as the `OpenAI-Project` header.
   * @default process.env.OPENAI_PROJECT_ID
   */
  project?: string;
  /**
   * Extra headers on every Batch API request.
   * @default {}
   */
  defaultHeaders?: Record<string, string>;
  /**
   * Attached to every batch this client creates: at most 15 pairs, keys at most 64 characters, values at most 512
   * (the key `autobatch_key` is reserved).
   * @default {}
   */
  metadata?: Record<string, string>;
  /**
   * Calls per batch file, at most 50,000: a buffer that reaches it is flushed at once.
   * @default 1000
   */
  batchSize?: number;
  /**
   * Bytes per batch file (encoded JSONL): a call that would push a buffer past it flushes the buffer first.
   * Under Doubleword's 100 MB upload cap (and OpenAI's 200 MB), with room for multipart overhead.
   * @default 95000000
   */
  maxBatchBytes?: number;
  /**
   * Milliseconds from a buffer's first call to its flush; fractions allowed.
   * @default 10000
   */
  batchWindowMs?: number;
  /**
   * Milliseconds between progress reads of each running batch.
   * @default 5000
   */
  pollIntervalMs?: number;
  /**
   * Completion window asked of the provider, e.g. "24h" or "1h" (Doubleword).
   * @default "24h"
   */
  completionWindow?: string;
  /**
   * Retries per Batch API request after its first attempt (408, 409, 429, 5xx and connection errors are retried).
   * @default 5
   */
  maxRetries?: number;
  /**
   * Milliseconds one Batch API request may spend retrying in total.
   * @default 120000
   */
  retryDeadlineMs?: number;
  /**
   * Batch API requests in flight at once (uploads, creates, polls, downloads).
   * @default 8
   */
  maxConcurrency?: number;
  /**
   * Milliseconds of silence (no headers, or no body bytes) before a Batch API request times out.
   * @default 300000
   */
  requestTimeoutMs?: number;
  /**
   * Milliseconds one attempt of a Batch API request may take in total, from sending it to the last body byte, however
   * steadily the provider trickles bytes (room for a 95 MB result file read at ~100 KB/s).
   * @default 900000
   */
  requestDeadlineMs?: number;
  /**
   * Largest JSON answer read (batch objects, lists, files, passthrough), in bytes; a larger one fails that request
   * and is not retried.
   * @default 10000000
   */
  maxResponseBytes?: number;
  /**
   * Largest result line read, in bytes; a larger one fails only its own call (`code: "result_line_too_large"`) and is
   * skipped, never held. Fits the largest legitimate line (2,048 embeddings of 3,072 floats: ~82 MB).
   * @default 100000000
   */
  maxResultLineBytes?: number;
  /**
   * Times a line that failed transiently (its result says 408, 409, 429 or 5xx, `batch_expired` or `request_timeout`)
   * is sent again in a later batch before its caller sees the error; other failures reject at once. Failed lines are
   * not billed. While a line may be sent again its bytes stay in memory until its call settles; with 0 they are freed
   * once the provider has validated the batch.
   * @default 2
   */
  lineRetries?: number;
  /**
   * Buffers (one per endpoint and model) that may fill at once. A call for a new endpoint or model beyond it first
   * flushes the buffer opened first (flush reason `"buffers"`), so calls spread over many models cannot hold unbounded
   * buffers and timers.
   * @default 100
   */
  maxBuffers?: number;
  /**
   * Durable state: a file path → an embedded SQLite database (one machine; several processes may share the file); a
   * `postgres://` or `postgresql://` URL → PostgreSQL, shared by a fleet. With a store, a crash or restart loses no
   * result and bills no line twice: a later client on the same store resumes the batches, replays stored results and
   * takes over batches whose process died. See docs/durable-state.md.
   * @default undefined (memory only)
   */
  store?: string;
  /**
   * Milliseconds a finished batch's results stay in the store, replayable (7 days).
   * @default 604800000
   */
  storeRetentionMs?: number;
  /**
   * With a store, what names a call: `"fingerprint"`, its idempotency key, else its endpoint and canonical body plus
   * its occurrence number among this client's identical calls, so a rerun replays; `"keys"`, only calls with an
   * idempotency key are ever replayed or shared; `"adopt"`, as `"keys"`, and a call without a key first adopts an
   * orphan: an identical line whose caller died with its process (each orphan goes to one call). See
   * docs/durable-state.md.
   * @default "fingerprint"
   */
  requestIdentity?: RequestIdentity;
  /**
   * Milliseconds past the completion window after which a still-running batch's calls are failed.
   * @default 3600000
   */
  deadlineGraceMs?: number;
  /**
   * Called with every lifecycle event (see docs/events.md); exceptions it throws are swallowed.
   * @default undefined (no listener)
   */
  onEvent?: (event: AutoBatchEvent) => void;
  /**
   * Time source for flush windows, polls and retries; tests inject a fake clock.
   * @default the real timers
   */
  clock?: Clock;
  /**
   * undici 7 or 8 dispatcher (Agent, ProxyAgent, Pool, Client) for Batch API requests (proxies, custom TLS).
   * @default a private undici Agent
   */
  dispatcher?: DispatcherLike;
}

/** One problem with one option: its path (the option's name first; empty for the options as a whole) and what is wrong. */
export interface OptionIssue {
  path: readonly PropertyKey[];
  message: string;
}

/** Thrown at construction when an option is wrong; names every offending option. */
export class InvalidOptionsError extends TypeError {
  override name = "InvalidOptionsError";
  /** The problems the message lists, for code that reports them in its own words (e.g. as CLI flags). */
  readonly issues: readonly OptionIssue[];
  constructor(message: string, issues: readonly OptionIssue[] = []) {
    super(message);
    this.issues = issues;
  }
}
