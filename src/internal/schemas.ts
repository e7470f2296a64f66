// zod envelopes for what the provider sends back. Only the fields we act on are checked; bodies are passed through
// untouched (validating whole bodies would cost ~5x per line and drop fields newer than our schema).
import { z } from "zod";

/** Doubleword omits unset fields where OpenAI sends null; both read as "absent". Empty strings too. */
const optionalId = z
  .string()
  .nullish()
  .transform((v) => (v ? v : undefined));

export const fileObjectSchema = z.looseObject({ id: z.string().min(1) });

const batchCountsSchema = z.looseObject({
  total: z.number().default(0),
  completed: z.number().default(0),
  failed: z.number().default(0),
});

export const batchSchema = z.looseObject({
  id: z.string().min(1),
  status: z.string(),
  /** Unix seconds; poll by listing stops at a page older than the oldest running batch. */
  created_at: z.number().nullish(),
  output_file_id: optionalId,
  error_file_id: optionalId,
  request_counts: batchCountsSchema.nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  errors: z
    .looseObject({
      data: z
        .array(z.looseObject({ code: z.string().nullish(), message: z.string().nullish(), line: z.number().nullish() }))
        .nullish(),
    })
    .nullish(),
});
export type BatchEnvelope = z.infer<typeof batchSchema>;

export const batchListSchema = z.looseObject({
  data: z.array(batchSchema),
  has_more: z.boolean().optional(),
  last_id: z.string().nullish(),
});

export interface ResultLine {
  custom_id: string;
  response?: { status_code: number; request_id?: string | null; body?: unknown } | null;
  error?: { code?: string | null; message?: string | null } | null;
}

/**
 * The result-line envelope, checked by hand: it runs once per call, where zod cost ~0.2 ms per 1,000 lines
 * (bench/). Returns the line, or what is wrong with it.
 */
export function readResultLine(v: unknown): ResultLine | string {
  if (!isObject(v)) return "not an object";
  if (typeof v.custom_id !== "string") return "custom_id is not a string";
  const { response, error } = v;
  if (response != null) {
    if (!isObject(response)) return "response is not an object";
    if (!Number.isInteger(response.status_code)) return "response.status_code is not an integer";
    if (response.request_id != null && typeof response.request_id !== "string")
      return "response.request_id is not a string";
  }
  if (error != null) {
    if (!isObject(error)) return "error is not an object";
    if (error.code != null && typeof error.code !== "string") return "error.code is not a string";
    if (error.message != null && typeof error.message !== "string") return "error.message is not a string";
  }
  return v as unknown as ResultLine;
}

/** A plain JSON object: not null, not an array. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "expired", "cancelled"]);
