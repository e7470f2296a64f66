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
  output_file_id: optionalId,
  error_file_id: optionalId,
  request_counts: batchCountsSchema.nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  errors: z
    .looseObject({ data: z.array(z.looseObject({ code: z.string().nullish(), message: z.string().nullish(), line: z.number().nullish() })).nullish() })
    .nullish(),
});
export type BatchEnvelope = z.infer<typeof batchSchema>;

export const batchListSchema = z.looseObject({
  data: z.array(batchSchema),
  has_more: z.boolean().optional(),
  last_id: z.string().nullish(),
});

export const resultLineSchema = z.looseObject({
  custom_id: z.string(),
  response: z
    .looseObject({
      status_code: z.number().int(),
      request_id: z.string().nullish(),
      body: z.unknown().optional(),
    })
    .nullish(),
  error: z.looseObject({ code: z.string().nullish(), message: z.string().nullish() }).nullish(),
});

export type ResultLine = z.infer<typeof resultLineSchema>;

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "expired", "cancelled"]);
