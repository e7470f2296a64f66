// One batch: its calls by custom_id, upload → create (never duplicated) → settle each call from its result line →
// settle the rest when the batch ends. The tracker decides when to look; this file decides what a look means.
import { randomBytes } from "node:crypto";
import { settle, type Call, type RawResult, type SettleSink } from "./call.js";
import { shapeResult, type Endpoint } from "../internal/endpoints.js";
import {
  APIConnectionError,
  APIError,
  AutoBatchError,
  BatchFailedError,
  ResultParseError,
  type ProviderError,
} from "../errors.js";
import type { BatchCounts, Events } from "../events.js";
import { errorFromBody, parseErrorBody } from "../internal/error-body.js";
import { recoverCustomId } from "../internal/jsonl.js";
import type { RequestSpec, Transport } from "../internal/transport.js";
import type { FileCursor } from "./results.js";
import {
  batchListSchema,
  batchSchema,
  fileObjectSchema,
  readResultLine,
  type BatchEnvelope,
  type ResultLine,
} from "../internal/schemas.js";
import { z } from "zod";

/** Metadata key that tags each batch with a client-made key, so a retried create can find a batch it already made. */
const BATCH_KEY = "autobatch_key";
const fileListSchema = z.looseObject({
  data: z.array(z.looseObject({ id: z.string(), filename: z.string().nullish(), bytes: z.number().nullish() })),
});

export interface BatchSettings {
  completionWindow: string;
  metadata: Record<string, string>;
}

export class Batch {
  readonly key = randomBytes(9).toString("base64url");
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly #calls = new Map<string, Call>();
  readonly #events: Events;
  readonly #sink: SettleSink;
  readonly #transport: Transport;
  id: string | undefined;
  status = "submitting";
  counts: BatchCounts = { total: 0, completed: 0, failed: 0 };
  output: FileCursor | undefined;
  error: FileCursor | undefined;
  /** When the batch was created (client clock, ms). */
  createdAt = 0;
  /** Errors the provider attached to the batch (e.g. validation failures), for the final message. */
  batchErrors: string[] = [];
  #unsettled: number;
  /** finish() ran: every call is settled and batchDone was emitted. */
  done = false;
  /** Aborted when every caller left before the batch was created: its upload/create retries stop. */
  readonly #nobodyWaits = new AbortController();
  #succeeded = 0;
  #failed = 0;
  readonly bytes: number;

  /** The JSONL file until it is uploaded. */
  #parts: Buffer[] | undefined;

  constructor(
    endpoint: Endpoint,
    model: string,
    calls: Call[],
    parts: Buffer[],
    bytes: number,
    sink: SettleSink,
    transport: Transport,
  ) {
    this.endpoint = endpoint;
    this.#parts = parts;
    this.model = model;
    this.bytes = bytes;
    this.#sink = sink;
    this.#events = sink.events;
    this.#transport = transport;
    for (const c of calls) {
      this.#calls.set(c.customId, c);
      c.owner = this;
    }
    this.#unsettled = calls.length;
  }

  get size(): number {
    return this.#calls.size;
  }

  /** Calls of this batch still waiting for a result (released callers excluded). */
  get unsettled(): number {
    return this.#unsettled;
  }

  /** Uploads the file and creates the batch. On failure every call is rejected with the reason. */
  async submit(settings: BatchSettings, now: number, stop: AbortSignal): Promise<boolean> {
    const signal = AbortSignal.any([stop, this.#nobodyWaits.signal]);
    let creating = false;
    try {
      const inputFileId = await this.#upload(signal);
      creating = true;
      const created = await this.#create(inputFileId, settings, signal);
      this.id = created.id;
      this.createdAt = now;
      for (const c of this.#calls.values()) c.batchId = created.id;
      this.apply(created);
      this.#events.emit("batchSubmitted", {
        batchId: created.id,
        inputFileId,
        endpoint: this.endpoint,
        model: this.model,
        calls: this.#calls.size,
        bytes: this.bytes,
      });
      return true;
    } catch (err) {
      const reason = err instanceof AutoBatchError ? err : new APIConnectionError(String(err));
      this.#events.emit("batchSubmitFailed", {
        endpoint: this.endpoint,
        model: this.model,
        calls: this.#calls.size,
        message: reason.message,
      });
      for (const c of this.#calls.values()) this.#settle(c, false, submitError(reason, c.customId));
      // Every caller left while the create was in flight: the provider may have made the batch all the same.
      if (creating && this.#nobodyWaits.signal.aborted && !stop.aborted) void this.cancelUpstream(stop);
      return false;
    }
  }

  /**
   * Best effort, so nobody pays for results nobody waits for: cancels the batch upstream (found by its key if its
   * creation's answer never arrived). A failure leaves it to finish upstream; its callers are already released.
   */
  async cancelUpstream(signal?: AbortSignal): Promise<void> {
    try {
      const id = this.id ?? (await this.#findBatch(signal))?.id;
      if (id)
        await this.#transport.json(
          { method: "POST", path: `/batches/${encodeURIComponent(id)}/cancel`, signal },
          batchSchema,
        );
    } catch (err) {
      this.#events.emit("warning", {
        batchId: this.id,
        message: `could not cancel batch upstream: ${(err as Error).message}`,
      });
    }
  }

  /** The file is named after the batch key: a retry after an ambiguous failure reuses a file that did arrive. */
  async #upload(signal: AbortSignal): Promise<string> {
    const filename = `autobatch-${this.key}.jsonl`;
    const upload = {
      fields: { purpose: "batch" },
      filename,
      contentType: "application/jsonl",
      parts: this.#parts ?? [],
    };
    const spec = { method: "POST", path: "/files", upload, signal } as const;
    try {
      return await this.#withLookup(
        spec,
        async () => (await this.#transport.jsonOnce(spec, fileObjectSchema)).id,
        () => this.#findFile(filename, signal),
      );
    } finally {
      // Kept for retries until here; a waiting call never needs its line again.
      this.#parts = undefined;
    }
  }

  /**
   * Retries a non-idempotent request per the policy; after an ambiguous failure (reset, timeout, 5xx) the next
   * attempt first looks, with `find`, for what the earlier one may have made upstream.
   */
  #withLookup<T>(spec: RequestSpec, attempt: () => Promise<T>, find: () => Promise<T | undefined>): Promise<T> {
    let ambiguous = false;
    return this.#transport.withRetry(spec, async () => {
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

  async #findFile(filename: string, signal: AbortSignal): Promise<string | undefined> {
    try {
      const list = await this.#transport.jsonOnce(
        { method: "GET", path: "/files", query: { purpose: "batch", limit: 100 }, signal },
        fileListSchema,
      );
      return list.data.find((f) => f.filename === filename && (f.bytes == null || f.bytes === this.bytes))?.id;
    } catch {
      return undefined;
    }
  }

  async #create(inputFileId: string, settings: BatchSettings, signal: AbortSignal): Promise<BatchEnvelope> {
    const spec = {
      method: "POST",
      path: "/batches",
      json: {
        input_file_id: inputFileId,
        endpoint: this.endpoint,
        completion_window: settings.completionWindow,
        metadata: { ...settings.metadata, [BATCH_KEY]: this.key },
      },
      signal,
    } as const;
    return this.#withLookup(
      spec,
      () => this.#transport.jsonOnce(spec, batchSchema),
      () => this.#findBatch(signal),
    );
  }

  /** Newest first: a batch created moments ago by an attempt whose answer was lost is on the first page. */
  async #findBatch(signal?: AbortSignal): Promise<BatchEnvelope | undefined> {
    const list = await this.#transport.jsonOnce(
      { method: "GET", path: "/batches", query: { limit: 100 }, signal },
      batchListSchema,
    );
    return list.data.find((b) => b.metadata?.[BATCH_KEY] === this.key);
  }

  /** Takes in a batch object read from the provider. Returns true when status or counts changed. */
  apply(b: BatchEnvelope): boolean {
    const counts = {
      total: b.request_counts?.total ?? 0,
      completed: b.request_counts?.completed ?? 0,
      failed: b.request_counts?.failed ?? 0,
    };
    const changed =
      b.status !== this.status ||
      counts.completed !== this.counts.completed ||
      counts.failed !== this.counts.failed ||
      counts.total !== this.counts.total;
    this.status = b.status;
    this.counts = counts;
    if (b.output_file_id && this.output?.fileId !== b.output_file_id)
      this.output = { fileId: b.output_file_id, next: 0 };
    if (b.error_file_id && this.error?.fileId !== b.error_file_id) this.error = { fileId: b.error_file_id, next: 0 };
    const errs = b.errors?.data ?? [];
    if (errs.length)
      this.batchErrors = errs.map(
        (e) => `${e.code ?? "error"}${e.line != null ? ` (line ${e.line})` : ""}: ${e.message ?? ""}`,
      );
    return changed;
  }

  progress(): void {
    this.#events.emit("batchProgress", {
      batchId: this.id!,
      status: this.status,
      counts: this.counts,
      settled: this.#calls.size - this.#unsettled,
      calls: this.#calls.size,
    });
  }

  /** Settles the call a result line belongs to. A duplicate line is ignored; a line for no call of ours is reported. */
  onLine = (raw: string): void => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.#unreadable(raw, "is not valid JSON");
      return;
    }
    const line = readResultLine(parsed);
    if (typeof line === "string") {
      this.#unreadable(raw, `does not match the result line shape (${line})`);
      return;
    }
    const customId = line.custom_id;
    const call = this.#calls.get(customId);
    if (!call) {
      this.#events.emit("warning", {
        batchId: this.id,
        message: `result line for unknown custom_id ${JSON.stringify(customId.slice(0, 80))} ignored`,
      });
      return;
    }
    if (call.settled) return;
    try {
      this.#settleFromLine(call, line);
    } catch (err) {
      // A body that breaks shaping (e.g. a malformed Responses `output`) fails its own call, never the read.
      this.#settle(
        call,
        false,
        new ResultParseError(`result line for this call could not be used: ${(err as Error).message}`, {
          customId,
          batchId: this.id,
        }),
      );
    }
  };

  #settleFromLine(call: Call, line: ResultLine): void {
    const { custom_id: customId, response, error } = line;
    const ctx = { customId, batchId: this.id, requestID: response?.request_id };
    if (response && response.status_code >= 200 && response.status_code < 300 && !error) {
      const value: unknown = call.raw
        ? ({
            status: response.status_code,
            body: response.body,
            requestId: response.request_id,
            customId,
            batchId: this.id,
          } satisfies RawResult)
        : shapeResult(this.endpoint, response.body, call.decodeBase64, response.request_id);
      this.#settle(call, true, value);
    } else if (response) {
      const { error: inner, message } = bodyError(response.body);
      this.#settle(
        call,
        false,
        APIError.generate(response.status_code, inner, message ?? "the request failed", undefined, ctx),
      );
    } else {
      this.#settle(call, false, lineError(error?.code, error?.message, ctx, this.status));
    }
  }

  /** A line we cannot read fails only its own call, when the custom_id can still be recovered from the text. */
  #unreadable(text: string, why: string): void {
    const call = this.#calls.get(recoverCustomId(text) ?? "");
    const preview = this.#transport.quote(text.slice(0, 200));
    if (call) {
      this.#settle(
        call,
        false,
        new ResultParseError(`result line for this call ${why}: ${preview}`, {
          customId: call.customId,
          batchId: this.id,
        }),
      );
    } else {
      this.#events.emit("warning", { batchId: this.id, message: `unattributable result line ${why}: ${preview}` });
    }
  }

  /** Rejects every call still waiting, naming the batch, its status and why. */
  finish(why: string): void {
    if (this.done) return;
    this.done = true;
    const detail = this.batchErrors.length ? `; provider errors: ${this.batchErrors.slice(0, 3).join("; ")}` : "";
    for (const call of this.#calls.values()) {
      if (call.settled) continue;
      this.#settle(
        call,
        false,
        new BatchFailedError(`Batch ${this.id} ended with status "${this.status}": ${why}${detail}`, {
          customId: call.customId,
          batchId: this.id,
          batchStatus: this.status,
        }),
      );
    }
    this.#events.emit("batchDone", {
      batchId: this.id!,
      status: this.status,
      counts: this.counts,
      succeeded: this.#succeeded,
      failed: this.#failed,
      calls: this.#calls.size,
    });
  }

  /** Releases one caller (its signal aborted) without stopping the batch. */
  release(call: Call, reason: unknown): void {
    this.#settle(call, false, reason);
  }

  /** Releases all waiting calls with `reason` (used by close with cancel). */
  abandon(reason: (call: Call) => unknown): void {
    for (const call of this.#calls.values()) if (!call.settled) this.#settle(call, false, reason(call));
  }

  #settle(call: Call, ok: boolean, value: unknown): boolean {
    if (!settle(call, this.#sink, ok, value)) return false;
    if (--this.#unsettled === 0 && !this.id) this.#nobodyWaits.abort();
    if (ok) this.#succeeded++;
    else this.#failed++;
    return true;
  }
}

function isAmbiguous(err: unknown): boolean {
  return err instanceof APIConnectionError || (err instanceof APIError && (err.status ?? 0) >= 500);
}

function submitError(reason: AutoBatchError, customId: string): AutoBatchError {
  if (reason instanceof APIConnectionError)
    return new (reason.constructor as typeof APIConnectionError)(reason.message, { customId, cause: reason });
  if (reason instanceof APIError)
    return APIError.generate(reason.status, reason.error, reason.message, reason.headers, { customId, cause: reason });
  return new BatchFailedError(`could not submit the batch: ${reason.message}`, { customId, cause: reason });
}

/** The provider's error inside a non-2xx line body: `{"error":{...}}`, a JSON string of it, or text. */
function bodyError(body: unknown): { error?: ProviderError; message?: string } {
  if (typeof body === "string") return parseErrorBody(body);
  if (typeof body === "object" && body !== null) return errorFromBody(body) ?? { message: JSON.stringify(body) };
  return {};
}

/**
 * An error-file line with no HTTP response. Doubleword puts a JSON-encoded FailureReason in `message`
 * ({type, details: {status, body}}); OpenAI a plain `{code, message}` (e.g. batch_expired).
 */
function lineError(
  code: string | null | undefined,
  message: string | null | undefined,
  ctx: { customId: string; batchId?: string },
  batchStatus: string,
): AutoBatchError {
  let reason: { type?: string; details?: { status?: number; body?: unknown; error?: string } } | undefined;
  try {
    const parsed = message ? (JSON.parse(message) as unknown) : undefined;
    if (typeof parsed === "object" && parsed !== null && "type" in parsed) reason = parsed as typeof reason;
  } catch {
    reason = undefined;
  }
  if (!reason) {
    if (code === "batch_expired" || code === "batch_cancelled") {
      return new BatchFailedError(`${code}: ${message ?? "the batch ended before this request ran"}`, {
        ...ctx,
        batchStatus,
      });
    }
    return APIError.generate(
      undefined,
      { message: message ?? "the request failed", code: code ?? null },
      undefined,
      undefined,
      ctx,
    );
  }
  const d = reason.details ?? {};
  if (typeof d.status === "number") {
    const { error, message: text } = bodyError(d.body);
    return APIError.generate(d.status, error, text ?? `${reason.type}`, undefined, ctx);
  }
  if (reason.type === "NetworkError" || reason.type === "Timeout") {
    return new APIConnectionError(`${reason.type}: ${d.error ?? "the provider could not reach the model"}`, ctx);
  }
  return new BatchFailedError(`${reason.type}${d.error ? `: ${d.error}` : ""}`, { ...ctx, batchStatus });
}
