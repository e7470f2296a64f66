// AutoBatcher's options: the documented interface, the schema that checks it, and the defaults, resolved here only.
import { z } from "zod";
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

/** OpenAI's hard limit: a batch file cannot hold more lines than this. */
const MAX_LINES_PER_BATCH = 50_000;
/** The metadata key autobatch tags each batch with (see batch.ts); callers may not set it. */
const RESERVED_METADATA_KEY = "autobatch_key";

const metadataSchema = z
  .record(z.string(), z.string().max(512, "metadata values are at most 512 characters"))
  // Checked here rather than by the record's key schema, whose failure zod reports only as "Invalid key in record".
  .superRefine((m, ctx) => {
    for (const key of Object.keys(m)) {
      if (key.length > 64)
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `metadata keys are at most 64 characters (this one has ${key.length})`,
        });
    }
  })
  .refine(
    (m) => Object.keys(m).length <= 15,
    "metadata takes at most 15 pairs (autobatch uses the 16th for its batch key)",
  )
  .refine(
    (m) => !(RESERVED_METADATA_KEY in m),
    `metadata key "${RESERVED_METADATA_KEY}" is reserved: autobatch tags each batch with it`,
  );

const headersSchema = z.record(z.string(), z.string());

export const positiveInt = (name: string) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .positive(`${name} must be > 0`);
export const nonNegative = (name: string) =>
  z
    .number({ error: `${name} must be a number` })
    .finite(`${name} must be finite`)
    .min(0, `${name} must be >= 0`);

export const optionsSchema = z.strictObject({
  apiKey: z.string().min(1, "apiKey must not be empty").optional(),
  baseURL: z.url({ protocol: /^https?$/, error: "baseURL must be an http(s) URL" }).optional(),
  organization: z.string().optional(),
  project: z.string().optional(),
  defaultHeaders: headersSchema.optional(),
  metadata: metadataSchema.optional(),
  batchSize: positiveInt("batchSize")
    .max(MAX_LINES_PER_BATCH, `batchSize must be <= ${MAX_LINES_PER_BATCH}`)
    .optional(),
  maxBatchBytes: positiveInt("maxBatchBytes").optional(),
  batchWindowMs: nonNegative("batchWindowMs").optional(),
  pollIntervalMs: nonNegative("pollIntervalMs").positive("pollIntervalMs must be > 0").optional(),
  completionWindow: z.string().regex(/^\S+$/, "completionWindow must be a non-empty word such as 24h").optional(),
  maxRetries: z.number().int("maxRetries must be a whole number").min(0, "maxRetries must be >= 0").optional(),
  retryDeadlineMs: positiveInt("retryDeadlineMs").optional(),
  maxConcurrency: positiveInt("maxConcurrency").optional(),
  requestTimeoutMs: positiveInt("requestTimeoutMs").optional(),
  requestDeadlineMs: positiveInt("requestDeadlineMs").optional(),
  maxResponseBytes: positiveInt("maxResponseBytes").optional(),
  maxResultLineBytes: positiveInt("maxResultLineBytes").optional(),
  deadlineGraceMs: nonNegative("deadlineGraceMs").optional(),
  lineRetries: z.number().int("lineRetries must be a whole number").min(0, "lineRetries must be >= 0").optional(),
  maxBuffers: positiveInt("maxBuffers").optional(),
  store: z
    .string({ error: "store must be a file path or a postgres:// URL" })
    .min(1, "store must not be empty")
    .optional(),
  storeRetentionMs: nonNegative("storeRetentionMs").optional(),
  requestIdentity: z
    .enum(["fingerprint", "keys"], { error: 'requestIdentity must be "fingerprint" or "keys"' })
    .optional(),
  onEvent: z
    .custom<(event: AutoBatchEvent) => void>((v) => typeof v === "function", "onEvent must be a function")
    .optional(),
  clock: z
    .custom<Clock>(
      (v) => typeof v === "object" && v !== null && typeof (v as Clock).setTimeout === "function",
      "clock must provide Date.now/setTimeout/clearTimeout",
    )
    .optional(),
  dispatcher: z
    .custom<DispatcherLike>(
      (v) => typeof v === "object" && v !== null && typeof (v as DispatcherLike).request === "function",
      "dispatcher must be an undici Dispatcher (an Agent, ProxyAgent, Pool or Client)",
    )
    .optional(),
});

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
   * idempotency key are ever replayed or shared.
   * @default "fingerprint"
   */
  requestIdentity?: "fingerprint" | "keys";
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

export interface ResolvedOptions {
  apiKey: string;
  baseURL: string;
  organization?: string;
  project?: string;
  defaultHeaders: Record<string, string>;
  metadata: Record<string, string>;
  batchSize: number;
  maxBatchBytes: number;
  batchWindowMs: number;
  pollIntervalMs: number;
  completionWindow: string;
  maxRetries: number;
  retryDeadlineMs: number;
  maxConcurrency: number;
  requestTimeoutMs: number;
  requestDeadlineMs: number;
  maxResponseBytes: number;
  maxResultLineBytes: number;
  deadlineGraceMs: number;
  lineRetries: number;
  maxBuffers: number;
  store?: string;
  storeRetentionMs: number;
  requestIdentity: "fingerprint" | "keys";
  onEvent?: (event: AutoBatchEvent) => void;
  clock?: Clock;
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

const env = (name: string): string | undefined => {
  const v = process.env[name]?.trim();
  return v ? v : undefined;
};

/** `schema.parse(input)`, or an InvalidOptionsError titled `title` with one line per offending option. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, title: string): z.output<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const lines: string[] = [];
  const issues: OptionIssue[] = [];
  for (const i of parsed.error.issues) {
    if (i.code === "unrecognized_keys") {
      lines.push(`unknown option(s): ${i.keys.join(", ")}`);
      for (const key of i.keys) issues.push({ path: [key], message: "unknown option" });
    } else {
      lines.push(`${i.path.length ? i.path.join(".") : "options"}: ${i.message}`);
      issues.push({ path: i.path, message: i.message });
    }
  }
  throw new InvalidOptionsError(`${title}:\n  ${lines.join("\n  ")}`, issues);
}

const TITLE = "Invalid AutoBatcher options";

/** An InvalidOptionsError about one option, found after the schema's checks. */
const invalidOption = (option: string, message: string) =>
  new InvalidOptionsError(`${TITLE}:\n  ${option}: ${message}`, [{ path: [option], message }]);

export function resolveOptions(input: AutoBatcherOptions = {}): ResolvedOptions {
  const o = parseOptions(optionsSchema, input, TITLE);
  const apiKey = o.apiKey ?? env("OPENAI_API_KEY");
  if (!apiKey) {
    throw invalidOption("apiKey", "missing; pass `apiKey` or set OPENAI_API_KEY");
  }
  const baseURL = o.baseURL ?? env("OPENAI_BASE_URL") ?? DEFAULTS.baseURL;
  if (!/^https?:\/\//.test(baseURL)) {
    // Not echoed: a mistyped URL may carry credentials.
    throw invalidOption("baseURL", "must be an http(s) URL (from OPENAI_BASE_URL or the option)");
  }
  const resolved: ResolvedOptions = {
    apiKey,
    baseURL: baseURL.replace(/\/+$/, ""),
    organization: o.organization ?? env("OPENAI_ORG_ID"),
    project: o.project ?? env("OPENAI_PROJECT_ID"),
    defaultHeaders: o.defaultHeaders ?? {},
    metadata: o.metadata ?? {},
    batchSize: o.batchSize ?? DEFAULTS.batchSize,
    maxBatchBytes: o.maxBatchBytes ?? DEFAULTS.maxBatchBytes,
    batchWindowMs: o.batchWindowMs ?? DEFAULTS.batchWindowMs,
    pollIntervalMs: o.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
    completionWindow: o.completionWindow ?? DEFAULTS.completionWindow,
    maxRetries: o.maxRetries ?? DEFAULTS.maxRetries,
    retryDeadlineMs: o.retryDeadlineMs ?? DEFAULTS.retryDeadlineMs,
    maxConcurrency: o.maxConcurrency ?? DEFAULTS.maxConcurrency,
    requestTimeoutMs: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    requestDeadlineMs: o.requestDeadlineMs ?? DEFAULTS.requestDeadlineMs,
    maxResponseBytes: o.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    maxResultLineBytes: o.maxResultLineBytes ?? DEFAULTS.maxResultLineBytes,
    deadlineGraceMs: o.deadlineGraceMs ?? DEFAULTS.deadlineGraceMs,
    lineRetries: o.lineRetries ?? DEFAULTS.lineRetries,
    maxBuffers: o.maxBuffers ?? DEFAULTS.maxBuffers,
    store: o.store,
    storeRetentionMs: o.storeRetentionMs ?? DEFAULTS.storeRetentionMs,
    requestIdentity: o.requestIdentity ?? DEFAULTS.requestIdentity,
    onEvent: o.onEvent,
    clock: o.clock,
    dispatcher: o.dispatcher,
  };
  // Readable where needed, but absent from JSON.stringify, util.inspect and spreads of the options.
  Object.defineProperty(resolved, "apiKey", { value: apiKey, enumerable: false });
  // A PostgreSQL URL may carry a password.
  Object.defineProperty(resolved, "store", { value: o.store, enumerable: false });
  return resolved;
}

/** "24h" → 86,400,000; "90m", "3600s", "2d" likewise. Unknown forms (e.g. "background") → undefined: no deadline. */
export function windowToMs(window: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(window);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
