// Every option, its default and its unit, in one place. The README's option table mirrors this file.
import { z } from "zod";
import type { Dispatcher } from "undici";
import type { Clock } from "./internal/clock.js";
import type { AutoBatchEvent } from "./events.js";

const MB = 1_000_000;

export const DEFAULTS = {
  baseURL: "https://api.openai.com/v1",
  batchSize: 1000,
  /** Under Doubleword's 100 MB upload cap (and OpenAI's 200 MB), with room for multipart overhead. */
  maxBatchBytes: 95 * MB,
  batchWindowMs: 10_000,
  pollIntervalMs: 5_000,
  completionWindow: "24h",
  maxRetries: 5,
  retryDeadlineMs: 120_000,
  maxConcurrency: 8,
  requestTimeoutMs: 300_000,
  deadlineGraceMs: 3_600_000,
  lineRetries: 2,
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
  /** Bearer key. Default: env `OPENAI_API_KEY`. Sent only to `baseURL`'s origin. */
  apiKey: z.string().min(1, "apiKey must not be empty").optional(),
  /** Provider base URL including `/v1`. Default: env `OPENAI_BASE_URL`, else https://api.openai.com/v1. */
  baseURL: z.url({ protocol: /^https?$/, error: "baseURL must be an http(s) URL" }).optional(),
  /** Sent as `OpenAI-Organization`. Default: env `OPENAI_ORG_ID`. */
  organization: z.string().optional(),
  /** Sent as `OpenAI-Project`. Default: env `OPENAI_PROJECT_ID`. */
  project: z.string().optional(),
  /** Extra headers on every Batch API request. */
  defaultHeaders: headersSchema.optional(),
  /** Attached to every batch this client creates (≤ 15 pairs; keys ≤ 64, values ≤ 512 chars). */
  metadata: metadataSchema.optional(),
  /** Calls per batch file before a flush. Default 1000, at most 50,000. */
  batchSize: positiveInt("batchSize")
    .max(MAX_LINES_PER_BATCH, `batchSize must be <= ${MAX_LINES_PER_BATCH}`)
    .optional(),
  /** Bytes per batch file (encoded JSONL) before a flush. Default 95,000,000. */
  maxBatchBytes: positiveInt("maxBatchBytes").optional(),
  /** Milliseconds from a buffer's first call to its flush. Default 10,000. */
  batchWindowMs: nonNegative("batchWindowMs").optional(),
  /** Milliseconds between progress reads of running batches. Default 5,000. */
  pollIntervalMs: nonNegative("pollIntervalMs").positive("pollIntervalMs must be > 0").optional(),
  /** Completion window passed to the provider, e.g. "24h" (default) or "1h". */
  completionWindow: z.string().regex(/^\S+$/, "completionWindow must be a non-empty word such as 24h").optional(),
  /** Retries per Batch API request after the first attempt. Default 5. */
  maxRetries: z.number().int("maxRetries must be a whole number").min(0, "maxRetries must be >= 0").optional(),
  /** Milliseconds one Batch API request may spend retrying in total. Default 120,000. */
  retryDeadlineMs: positiveInt("retryDeadlineMs").optional(),
  /** Batch API requests in flight at once (uploads, creates, polls, downloads). Default 8. */
  maxConcurrency: positiveInt("maxConcurrency").optional(),
  /** Milliseconds of silence (no headers, or no body bytes) before a Batch API request times out. Default 300,000. */
  requestTimeoutMs: positiveInt("requestTimeoutMs").optional(),
  /** Milliseconds past the completion window after which a still-running batch's calls are failed. Default 3,600,000. */
  deadlineGraceMs: nonNegative("deadlineGraceMs").optional(),
  /**
   * Times a line that failed transiently (its result says 408, 409, 429 or 5xx, `batch_expired` or
   * `request_timeout`) is sent again in a later batch before its caller sees the error; other failures reject at
   * once. Failed lines are not billed. While a line may be sent again, its bytes stay in memory until its call
   * settles; 0 frees them at upload. Default 2.
   */
  lineRetries: z.number().int("lineRetries must be a whole number").min(0, "lineRetries must be >= 0").optional(),
  /**
   * Durable state: a file path → an embedded SQLite database (one machine; several processes may share the file); a
   * `postgres://` or `postgresql://` URL → PostgreSQL, shared by a fleet. With a store, a crash or restart loses no
   * result and bills no line twice: a later client on the same store resumes the batches, replays stored results and
   * takes over batches whose process died. Default: none (memory only).
   */
  store: z
    .string({ error: "store must be a file path or a postgres:// URL" })
    .min(1, "store must not be empty")
    .optional(),
  /** Milliseconds a finished batch's results stay in the store, replayable. Default 604,800,000 (7 days). */
  storeRetentionMs: nonNegative("storeRetentionMs").optional(),
  /**
   * With a store, what names a call: "fingerprint" (default) — its idempotency key, else its endpoint and canonical
   * body plus its occurrence number among this client's identical calls, so a rerun replays; "keys" — only calls
   * with an idempotency key are ever replayed or shared.
   */
  requestIdentity: z
    .enum(["fingerprint", "keys"], { error: 'requestIdentity must be "fingerprint" or "keys"' })
    .optional(),
  /** Called with every lifecycle event; exceptions it throws are swallowed. */
  onEvent: z
    .custom<(event: AutoBatchEvent) => void>((v) => typeof v === "function", "onEvent must be a function")
    .optional(),
  /** Time source for flush windows, polls and retries. Default: the real timers. Tests inject a fake clock. */
  clock: z
    .custom<Clock>(
      (v) => typeof v === "object" && v !== null && typeof (v as Clock).setTimeout === "function",
      "clock must provide Date.now/setTimeout/clearTimeout",
    )
    .optional(),
  /** undici dispatcher for Batch API requests (proxies, custom TLS). Default: a private Agent. */
  dispatcher: z
    .custom<Dispatcher>((v) => typeof v === "object" && v !== null, "dispatcher must be an undici Dispatcher")
    .optional(),
});

export type AutoBatcherOptions = z.input<typeof optionsSchema>;

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
  deadlineGraceMs: number;
  lineRetries: number;
  store?: string;
  storeRetentionMs: number;
  requestIdentity: "fingerprint" | "keys";
  onEvent?: (event: AutoBatchEvent) => void;
  clock?: Clock;
  dispatcher?: Dispatcher;
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
    deadlineGraceMs: o.deadlineGraceMs ?? DEFAULTS.deadlineGraceMs,
    lineRetries: o.lineRetries ?? DEFAULTS.lineRetries,
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
