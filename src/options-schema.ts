// The zod schema that checks AutoBatcherOptions (the interface in options.ts), and how its failures are reported.
import { z } from "zod";
import type { Clock } from "./internal/clock.js";
import type { AutoBatchEvent } from "./events.js";
import { InvalidOptionsError, type DispatcherLike, type OptionIssue, type RequestIdentity } from "./options.js";

/** OpenAI's hard limit: a batch file cannot hold more lines than this. */
const MAX_LINES_PER_BATCH = 50_000;
/** The metadata key autobatch tags each batch with (see BATCH_KEY in core/submit.ts); callers may not set it. */
const RESERVED_METADATA_KEY = "autobatch_key";

export const requestIdentitySchema = z.enum(["fingerprint", "keys", "adopt"] satisfies RequestIdentity[], {
  error: 'requestIdentity must be "fingerprint", "keys" or "adopt"',
});

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
  requestIdentity: requestIdentitySchema.optional(),
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
