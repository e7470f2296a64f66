// Upload → create, never duplicated and never left billing for nobody. Both requests are retried per the policy;
// after an ambiguous failure (a reset, a timeout, a 5xx, or a 2xx whose body is not what was asked for) the request
// may have taken effect, so the client looks upstream (the file by its name, the batch by its key) before trying
// again, and again before giving up. A batch list may lag behind a creation: a batch is only taken as not made after
// several reads of the list, spaced out. A lookup that cannot be read stops a blind second attempt.
import { z } from "zod";
import { APIConnectionError, APIError, type AutoBatchError, BatchFailedError } from "../errors.js";
import { sleep, type Clock } from "../internal/clock.js";
import type { Endpoint } from "../internal/endpoints.js";
import type { BatchHttp } from "./slots.js";
import { batchListSchema, batchSchema, fileObjectSchema, type BatchEnvelope } from "../internal/schemas.js";

/** Metadata key that tags each batch with a client-made key, so a retried create can find a batch it already made. */
export const BATCH_KEY = "autobatch_key";
/** Reads of the batch list before a batch an ambiguous create may have made is taken as not made. */
const LIST_READS = 3;
/** Lookups (each of up to LIST_READS reads) after an ambiguous create's retries are spent, before giving up. */
const FINAL_LOOKUPS = 4;
/** Wait before the second read of the list; doubles for each further read. */
const LIST_LAG_MS = 1_000;

const fileListSchema = z.looseObject({
  data: z.array(z.looseObject({ id: z.string(), filename: z.string().nullish(), bytes: z.number().nullish() })),
});

export interface SubmitContext {
  transport: BatchHttp;
  clock: Clock;
}

export interface CreateSettings {
  completionWindow: string;
  metadata: Record<string, string>;
}

/** A create that failed for good; `maybeCreated` when the batch may exist upstream all the same (it could not be looked up). */
export class CreateFailed extends Error {
  readonly reason: unknown;
  readonly maybeCreated: boolean;
  constructor(reason: unknown, maybeCreated: boolean) {
    super((reason as Error)?.message ?? String(reason));
    this.reason = reason;
    this.maybeCreated = maybeCreated;
  }
}

/**
 * The file is named after the batch key: after an ambiguous failure, a file of that name is the earlier attempt's.
 * Spare copies (an attempt that landed after all) are deleted once one is in use.
 */
export async function uploadFile(
  ctx: SubmitContext,
  key: string,
  parts: Buffer[],
  bytes: number,
  signal: AbortSignal,
  warn: (message: string) => void,
): Promise<string> {
  const { transport } = ctx;
  const filename = `autobatch-${key}.jsonl`;
  const upload = { fields: { purpose: "batch" }, filename, contentType: "application/jsonl", parts };
  const spec = { method: "POST", path: "/files", upload, signal } as const;
  const find = async () => (await listFiles(transport, filename, bytes, signal))[0];
  let ambiguous = false;
  let id: string;
  try {
    id = await transport.withRetry(spec, async () => {
      // Throws when the list cannot be read: the policy retries the lookup rather than uploading blindly.
      if (ambiguous) {
        const found = await find();
        if (found) return found;
      }
      try {
        return (await transport.jsonOnce(spec, fileObjectSchema)).id;
      } catch (err) {
        ambiguous ||= isAmbiguous(err);
        throw err;
      }
    });
  } catch (err) {
    const found = ambiguous && !signal.aborted ? await find().catch(() => undefined) : undefined;
    if (!found) throw err;
    id = found;
  }
  if (ambiguous) await deleteSpares(transport, filename, bytes, id, signal, warn);
  return id;
}

export async function createBatch(
  ctx: SubmitContext,
  key: string,
  endpoint: Endpoint,
  inputFileId: string,
  settings: CreateSettings,
  signal: AbortSignal,
): Promise<BatchEnvelope> {
  const { transport } = ctx;
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
  let ambiguous = false;
  try {
    return await transport.withRetry(spec, async () => {
      if (ambiguous) {
        const found = await lookupBatch(ctx, key, signal);
        if (found) return found;
      }
      try {
        return await transport.jsonOnce(spec, batchSchema);
      } catch (err) {
        ambiguous ||= isAmbiguous(err);
        throw err;
      }
    });
  } catch (err) {
    if (!ambiguous || signal.aborted) throw new CreateFailed(err, ambiguous);
    // It may run upstream: look again before giving up on it, whatever the lookups' own failures (a refused or
    // failing list says nothing about whether the batch exists), spaced out and bounded.
    for (let attempt = 0; attempt < FINAL_LOOKUPS; attempt++) {
      try {
        const found = await lookupBatch(ctx, key, signal);
        if (found) return found;
        throw new CreateFailed(err, false);
      } catch (lookup) {
        if (lookup instanceof CreateFailed) throw lookup;
        if (signal.aborted) break;
        await sleep(ctx.clock, LIST_LAG_MS * 2 ** attempt, signal).catch(() => undefined);
      }
    }
    throw new CreateFailed(err, true);
  }
}

/**
 * The batch tagged with `key`, read from the list up to LIST_READS times (spaced out: a list may lag behind a
 * creation). Undefined when every read succeeded without it; throws when a read fails.
 */
export async function lookupBatch(
  ctx: SubmitContext,
  key: string,
  signal?: AbortSignal,
): Promise<BatchEnvelope | undefined> {
  for (let read = 0; read < LIST_READS; read++) {
    if (read > 0) await sleep(ctx.clock, LIST_LAG_MS * 2 ** (read - 1), signal);
    const found = await findBatch(ctx.transport, key, signal);
    if (found) return found;
  }
  return undefined;
}

/** Newest first: a batch created moments ago by an attempt whose answer was lost is on the first page. */
async function findBatch(transport: BatchHttp, key: string, signal?: AbortSignal): Promise<BatchEnvelope | undefined> {
  const list = await transport.jsonOnce(
    { method: "GET", path: "/batches", query: { limit: 100 }, signal },
    batchListSchema,
  );
  return list.data.find((b) => b.metadata?.[BATCH_KEY] === key);
}

export async function cancelBatch(transport: BatchHttp, id: string, signal?: AbortSignal): Promise<void> {
  await transport.json({ method: "POST", path: `/batches/${encodeURIComponent(id)}/cancel`, signal }, batchSchema);
}

/** Ids of the files named `filename` (of `bytes` when the list says), newest first. Throws when the list cannot be read. */
async function listFiles(
  transport: BatchHttp,
  filename: string,
  bytes: number,
  signal: AbortSignal,
): Promise<string[]> {
  const list = await transport.jsonOnce(
    { method: "GET", path: "/files", query: { purpose: "batch", limit: 100 }, signal },
    fileListSchema,
  );
  return list.data.filter((f) => f.filename === filename && (f.bytes == null || f.bytes === bytes)).map((f) => f.id);
}

/** Best effort: deletes copies of the file other than the one in use. */
async function deleteSpares(
  transport: BatchHttp,
  filename: string,
  bytes: number,
  keep: string,
  signal: AbortSignal,
  warn: (message: string) => void,
): Promise<void> {
  try {
    const spares = (await listFiles(transport, filename, bytes, signal)).filter((id) => id !== keep);
    for (const id of spares)
      await transport.json({ method: "DELETE", path: `/files/${encodeURIComponent(id)}`, signal }, z.unknown());
  } catch (err) {
    warn(`could not delete a spare copy of ${filename}: ${(err as Error).message}`);
  }
}

/** Whether a failed request may have taken effect upstream all the same. */
function isAmbiguous(err: unknown): boolean {
  if (err instanceof APIConnectionError) return true;
  const status = err instanceof APIError ? (err.status ?? 0) : 0;
  return status >= 500 || (status >= 200 && status < 300);
}

/** The error a call of a batch that could not be submitted is rejected with: the reason, naming the call. */
export function submitError(reason: AutoBatchError, customId: string): AutoBatchError {
  if (reason instanceof APIConnectionError)
    return new (reason.constructor as typeof APIConnectionError)(reason.message, { customId, cause: reason });
  if (reason instanceof APIError)
    return APIError.generate(reason.status, reason.error, reason.message, reason.headers, { customId, cause: reason });
  return new BatchFailedError(`could not submit the batch: ${reason.message}`, { customId, cause: reason });
}
