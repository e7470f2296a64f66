// Upload → create, never duplicated: both requests are retried per the policy, and after an ambiguous failure the
// next attempt first looks upstream (the file by its name, the batch by its key) for what the earlier one made.
import { z } from "zod";
import { APIConnectionError, APIError, type AutoBatchError, BatchFailedError } from "../errors.js";
import type { Endpoint } from "../internal/endpoints.js";
import type { RequestSpec, Transport } from "../internal/transport.js";
import { batchListSchema, batchSchema, fileObjectSchema, type BatchEnvelope } from "../internal/schemas.js";

/** Metadata key that tags each batch with a client-made key, so a retried create can find a batch it already made. */
export const BATCH_KEY = "autobatch_key";
const fileListSchema = z.looseObject({
  data: z.array(z.looseObject({ id: z.string(), filename: z.string().nullish(), bytes: z.number().nullish() })),
});

export interface CreateSettings {
  completionWindow: string;
  metadata: Record<string, string>;
}

/** The file is named after the batch key: a retry after an ambiguous failure reuses a file that did arrive. */
export function uploadFile(
  transport: Transport,
  key: string,
  parts: Buffer[],
  bytes: number,
  signal: AbortSignal,
): Promise<string> {
  const filename = `autobatch-${key}.jsonl`;
  const upload = { fields: { purpose: "batch" }, filename, contentType: "application/jsonl", parts };
  const spec = { method: "POST", path: "/files", upload, signal } as const;
  return withLookup(
    transport,
    spec,
    async () => (await transport.jsonOnce(spec, fileObjectSchema)).id,
    () => findFile(transport, filename, bytes, signal),
  );
}

export function createBatch(
  transport: Transport,
  key: string,
  endpoint: Endpoint,
  inputFileId: string,
  settings: CreateSettings,
  signal: AbortSignal,
): Promise<BatchEnvelope> {
  const spec = {
    method: "POST",
    path: "/batches",
    json: {
      input_file_id: inputFileId,
      endpoint,
      completion_window: settings.completionWindow,
      metadata: { ...settings.metadata, [BATCH_KEY]: key },
    },
    signal,
  } as const;
  return withLookup(
    transport,
    spec,
    () => transport.jsonOnce(spec, batchSchema),
    () => findBatch(transport, key, signal),
  );
}

/** Newest first: a batch created moments ago by an attempt whose answer was lost is on the first page. */
export async function findBatch(
  transport: Transport,
  key: string,
  signal?: AbortSignal,
): Promise<BatchEnvelope | undefined> {
  const list = await transport.jsonOnce(
    { method: "GET", path: "/batches", query: { limit: 100 }, signal },
    batchListSchema,
  );
  return list.data.find((b) => b.metadata?.[BATCH_KEY] === key);
}

export async function cancelBatch(transport: Transport, id: string, signal?: AbortSignal): Promise<void> {
  await transport.json({ method: "POST", path: `/batches/${encodeURIComponent(id)}/cancel`, signal }, batchSchema);
}

async function findFile(
  transport: Transport,
  filename: string,
  bytes: number,
  signal: AbortSignal,
): Promise<string | undefined> {
  try {
    const list = await transport.jsonOnce(
      { method: "GET", path: "/files", query: { purpose: "batch", limit: 100 }, signal },
      fileListSchema,
    );
    return list.data.find((f) => f.filename === filename && (f.bytes == null || f.bytes === bytes))?.id;
  } catch {
    return undefined;
  }
}

/**
 * Retries a non-idempotent request per the policy; after an ambiguous failure (reset, timeout, 5xx) the next
 * attempt first looks, with `find`, for what the earlier one may have made upstream.
 */
function withLookup<T>(
  transport: Transport,
  spec: RequestSpec,
  attempt: () => Promise<T>,
  find: () => Promise<T | undefined>,
): Promise<T> {
  let ambiguous = false;
  return transport.withRetry(spec, async () => {
    if (ambiguous) {
      const found = await find();
      if (found !== undefined) return found;
    }
    try {
      return await attempt();
    } catch (err) {
      ambiguous ||= isAmbiguous(err);
      throw err;
    }
  });
}

function isAmbiguous(err: unknown): boolean {
  return err instanceof APIConnectionError || (err instanceof APIError && (err.status ?? 0) >= 500);
}

/** The error a call of a batch that could not be submitted is rejected with: the reason, naming the call. */
export function submitError(reason: AutoBatchError, customId: string): AutoBatchError {
  if (reason instanceof APIConnectionError)
    return new (reason.constructor as typeof APIConnectionError)(reason.message, { customId, cause: reason });
  if (reason instanceof APIError)
    return APIError.generate(reason.status, reason.error, reason.message, reason.headers, { customId, cause: reason });
  return new BatchFailedError(`could not submit the batch: ${reason.message}`, { customId, cause: reason });
}
