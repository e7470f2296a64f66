// The /v1/batches handlers: create, list, read and cancel.
import { setMaxListeners } from "node:events";
import { windowToMs } from "../../options-resolve.js";
import { batchObject, listObject } from "../objects.js";
import { EmulatorHttpError, json, type Reply } from "../reply.js";
import { newBatchId, newFileId, type BatchRecord, type FileRecord } from "../store.js";
import { DW_URLS, OPENAI_URLS } from "../validate.js";
import { parseCreate, readCreateBatchBody } from "./batch-body.js";
import { findBatch, findFile, nowSec, type RouteContext, type RouteRequest } from "./context.js";
import { page, pageParams } from "./paging.js";

function windowSeconds(window: string): number {
  return Math.floor((windowToMs(window) ?? 24 * 3_600_000) / 1000);
}

export async function createBatch(ctx: RouteContext, { req }: RouteRequest): Promise<Reply> {
  const openai = ctx.flavor === "openai";
  const params = parseCreate(ctx, await readCreateBatchBody(ctx, req));
  const endpoints = openai ? OPENAI_URLS : DW_URLS;
  if (!endpoints.includes(params.endpoint)) {
    throw openai
      ? new EmulatorHttpError(
          400,
          `Invalid value for 'endpoint': '${params.endpoint}'. Supported: ${endpoints.join(", ")}.`,
          {
            param: "endpoint",
            code: "invalid_value",
          },
        )
      : new EmulatorHttpError(400, `Unsupported endpoint '${params.endpoint}'. Supported: ${endpoints.join(", ")}`);
  }
  if (!ctx.completionWindows.includes(params.completion_window)) {
    throw openai
      ? new EmulatorHttpError(
          400,
          `Invalid value for 'completion_window': '${params.completion_window}'. Supported: ${ctx.completionWindows.join(", ")}.`,
          { param: "completion_window", code: "invalid_value" },
        )
      : new EmulatorHttpError(
          400,
          `Unsupported completion_window. Allowed values: ${ctx.completionWindows.join(", ")}`,
        );
  }
  let input: FileRecord;
  try {
    input = findFile(ctx, params.input_file_id);
  } catch (err) {
    if (err instanceof EmulatorHttpError && openai)
      throw new EmulatorHttpError(err.status, err.message, { param: "input_file_id" });
    throw err;
  }
  if (input.kind !== "input" || input.purpose !== "batch") {
    throw new EmulatorHttpError(400, `File ${input.id} is not a batch input file (purpose '${input.purpose}')`, {
      param: "input_file_id",
    });
  }
  const createdAt = nowSec(ctx);
  const id = newBatchId(ctx.flavor);
  const resultFile = (kind: "output" | "error"): FileRecord => ({
    id: newFileId(ctx.flavor),
    kind,
    purpose: openai || kind === "output" ? "batch_output" : "batch_error",
    filename: openai ? `${id}_${kind}.jsonl` : `batch-${id}-${kind}.jsonl`,
    createdAt,
    lines: [],
    customIds: [],
    bytes: 0,
    batchId: id,
    // OpenAI: result files exist only once the batch is finished.
    hidden: openai,
  });
  const output = resultFile("output");
  const error = resultFile("error");
  const batch: BatchRecord = {
    id,
    seq: ctx.store.nextSeq(),
    endpoint: params.endpoint,
    inputFileId: input.id,
    completionWindow: params.completion_window,
    metadata: params.metadata,
    createdAt,
    createdAtMs: ctx.now(),
    expiresAt: createdAt + windowSeconds(params.completion_window),
    lines: input.lines,
    customIds: input.customIds,
    outputFileId: output.id,
    errorFileId: error.id,
    outputDeleted: false,
    errorDeleted: false,
    status: "validating",
    started: false,
    // Doubleword pre-fills the total from the file; OpenAI counts only after validation.
    total: openai ? 0 : input.lines.length,
    completed: 0,
    failed: 0,
    cancelled: 0,
    usage: { input: 0, output: 0 },
    enqueuedTokens: 0,
    active: true,
    next: 0,
    inFlight: new Set(),
    stopped: false,
    abort: new AbortController(),
  };
  // Every in-flight line of the batch listens on this signal (bounded by the concurrency).
  setMaxListeners(0, batch.abort.signal);
  ctx.store.addFile(output);
  ctx.store.addFile(error);
  ctx.store.addBatch(batch);
  ctx.counters.batchesCreated++;
  ctx.runner.submit(batch);
  return json(openai ? 200 : 201, batchObject(ctx.flavor, batch, createdAt));
}

export async function getBatch(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, batchObject(ctx.flavor, findBatch(ctx, id), nowSec(ctx)));
}

export async function listBatches(ctx: RouteContext, { query }: RouteRequest): Promise<Reply> {
  const openai = ctx.flavor === "openai";
  const { limit, after } = pageParams(ctx, query, openai ? 100 : 101, 20);
  // Newest first; creation order breaks ties within one created_at second.
  const visibleFrom = ctx.now() - ctx.listLagMs;
  const batches = [...ctx.store.batches.values()]
    .filter((b) => ctx.listLagMs === 0 || b.createdAtMs <= visibleFrom)
    .sort((a, b) => b.createdAt - a.createdAt || b.seq - a.seq);
  const { data, hasMore } = page(ctx, batches, limit, after);
  const now = nowSec(ctx);
  for (const b of data) ctx.runner.checkExpiry(b);
  return json(
    200,
    listObject(
      ctx.flavor,
      data.map((b) => batchObject(ctx.flavor, b, now)),
      hasMore,
    ),
  );
}

export async function cancelBatch(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  const batch = findBatch(ctx, id);
  ctx.runner.cancel(batch);
  const reply = json(200, batchObject(ctx.flavor, batch, nowSec(ctx)));
  // OpenAI answers `cancelling`; with nothing in flight the batch is `cancelled` by the next read.
  ctx.runner.settle(batch);
  return reply;
}
