// The /v1 Batch API handlers (docs/protocols.md §1-§3, §7), for both flavors.
import { windowToMs } from "../options.js";
import { setMaxListeners } from "node:events";
import type { IncomingMessage } from "node:http";
import { consumeBody, readJson } from "../server-kit/request-body.js";
import { contentReply, type ContentContext } from "./content.js";
import { MultipartError, MultipartParser, boundaryOf } from "./multipart.js";
import { batchObject, fileObject, listObject } from "./objects.js";
import { EmulatorHttpError, json, type Reply } from "./reply.js";
import type { Runner } from "./runner.js";
import { UUID, newBatchId, newFileId, type BatchRecord, type FileRecord, type Store } from "./store.js";
import { DW_URLS, UploadLineSplitter, OPENAI_URLS, decodeDw, isBlank, validateDwLine } from "./validate.js";
import type { EmulatorCounters, Flavor } from "./types.js";

export interface RouteContext extends ContentContext {
  flavor: Flavor;
  store: Store;
  runner: Runner;
  counters: EmulatorCounters;
  now: () => number;
  maxFileBytes: number;
  /** Doubleword: enforced at upload only when configured. */
  maxLines: number | undefined;
  completionWindows: readonly string[];
  /** Batches younger than this (ms) are left out of lists. */
  listLagMs: number;
}

export interface RouteRequest {
  req: IncomingMessage;
  id: string;
  query: URLSearchParams;
}

type Handler = (ctx: RouteContext, r: RouteRequest) => Promise<Reply>;

const MULTIPART_OVERHEAD = 10 * 1024;
const MAX_FIELD_BYTES = 64 * 1024;
const MAX_JSON_BODY = 1024 * 1024;
const DEFAULT_FILE_TTL = 30 * 24 * 3600;
const DW_RESERVED = new Set([
  "created_by_email",
  "context_name",
  "context_type",
  "request_source",
  "created_by",
  "dw_user_agent",
]);
const OPENAI_PURPOSES = ["batch", "assistants", "fine-tune", "vision", "user_data", "evals"];

const nowSec = (ctx: RouteContext) => Math.floor(ctx.now() / 1000);

// ---------------------------------------------------------------- lookups

function findFile(ctx: RouteContext, id: string): FileRecord {
  if (ctx.flavor === "doubleword" && !UUID.test(id)) throw new EmulatorHttpError(400, "Invalid file ID format");
  const file = ctx.store.files.get(id);
  if (file && !file.hidden) return file;
  throw ctx.flavor === "openai"
    ? new EmulatorHttpError(404, `No such File object: ${id}`, { param: "id" })
    : new EmulatorHttpError(404, `File with ID ${id} not found`);
}

function findBatch(ctx: RouteContext, id: string): BatchRecord {
  if (ctx.flavor === "doubleword" && !UUID.test(id)) throw new EmulatorHttpError(400, "Invalid batch ID format");
  const batch = ctx.store.batches.get(id);
  if (batch) {
    ctx.runner.checkExpiry(batch);
    return batch;
  }
  throw ctx.flavor === "openai"
    ? new EmulatorHttpError(404, `No such Batch object: ${id}`, { param: "batch_id" })
    : new EmulatorHttpError(404, `Batch with ID ${id} not found`);
}

// ---------------------------------------------------------------- files

interface Upload {
  fields: Map<string, string>;
  file?: { filename: string; lines: string[]; customIds: string[]; bytes: number };
}

/** Reads the multipart body; Doubleword lines are validated as they stream in. */
async function readUpload(ctx: RouteContext, req: IncomingMessage): Promise<Upload> {
  const boundary = boundaryOf(req.headers["content-type"]);
  if (!boundary) {
    throw new EmulatorHttpError(400, "Invalid `boundary` for `multipart/form-data` request", { param: "file" });
  }
  const tooLarge = () =>
    new EmulatorHttpError(413, `File exceeds the maximum allowed size of ${ctx.maxFileBytes} bytes`);
  if (Number(req.headers["content-length"]) > ctx.maxFileBytes + MULTIPART_OVERHEAD) throw tooLarge();

  const upload: Upload = { fields: new Map() };
  let field: { name: string; chunks: Buffer[]; bytes: number } | undefined;
  let splitter: UploadLineSplitter | undefined;
  const checkPurpose = (purpose: string) => {
    if (ctx.flavor === "doubleword" && purpose !== "batch") {
      throw new EmulatorHttpError(400, `Invalid purpose '${purpose}'. Only 'batch' is supported.`);
    }
  };
  const parser = new MultipartParser(boundary, {
    start(part) {
      if (part.name === "file" && part.filename !== undefined && !upload.file) {
        const file = {
          filename: part.filename || "upload.jsonl",
          lines: [] as string[],
          customIds: [] as string[],
          bytes: 0,
        };
        upload.file = file;
        splitter = new UploadLineSplitter((line, offset) => {
          if (isBlank(line)) return;
          if (ctx.flavor === "openai") {
            file.lines.push(line.toString("utf8"));
            return;
          }
          const n = file.lines.length + 1;
          const text = decodeDw(line, n, offset);
          file.customIds.push(validateDwLine(text, n, line.length));
          file.lines.push(text);
        });
      } else {
        field = { name: part.name, chunks: [], bytes: 0 };
      }
    },
    data(chunk) {
      if (splitter && upload.file) {
        upload.file.bytes += chunk.length;
        if (upload.file.bytes > ctx.maxFileBytes) throw tooLarge();
        splitter.push(chunk);
      } else if (field) {
        field.bytes += chunk.length;
        if (field.bytes > MAX_FIELD_BYTES)
          throw new EmulatorHttpError(400, `Multipart field '${field.name}' is too large`);
        field.chunks.push(Buffer.from(chunk));
      }
    },
    end() {
      if (splitter) {
        splitter.end();
        splitter = undefined;
      } else if (field) {
        const value = Buffer.concat(field.chunks).toString("utf8");
        if (!upload.fields.has(field.name)) upload.fields.set(field.name, value);
        if (field.name === "purpose") checkPurpose(value);
        field = undefined;
      }
    },
  });

  // On a bad part keep draining (discarding) the body, so the client reads our answer rather than a reset.
  let failure: unknown;
  await consumeBody(req, (chunk) => {
    if (failure) return;
    try {
      parser.write(chunk);
    } catch (err) {
      failure = err;
    }
  });
  if (failure) throw failure;
  parser.end();
  return upload;
}

async function uploadFile(ctx: RouteContext, { req }: RouteRequest): Promise<Reply> {
  let upload: Upload;
  try {
    upload = await readUpload(ctx, req);
  } catch (err) {
    if (err instanceof MultipartError) throw new EmulatorHttpError(400, `Invalid multipart body: ${err.message}`);
    throw err;
  }
  const openai = ctx.flavor === "openai";
  const purpose = upload.fields.get("purpose");
  if (openai) {
    if (purpose === undefined)
      throw new EmulatorHttpError(400, "Missing required parameter: 'purpose'.", {
        param: "purpose",
        code: "missing_required_parameter",
      });
    if (!OPENAI_PURPOSES.includes(purpose))
      throw new EmulatorHttpError(400, `Invalid value for 'purpose': '${purpose}'.`, {
        param: "purpose",
        code: "invalid_value",
      });
  }
  const file = upload.file;
  if (!file) {
    throw openai
      ? new EmulatorHttpError(400, "Missing required parameter: 'file'.", {
          param: "file",
          code: "missing_required_parameter",
        })
      : new EmulatorHttpError(400, "No file field found in multipart upload");
  }
  if (!openai) {
    if (file.lines.length === 0) throw new EmulatorHttpError(400, "File contains no valid request templates");
    if (ctx.maxLines !== undefined && file.lines.length > ctx.maxLines) {
      throw new EmulatorHttpError(
        400,
        `File contains ${file.lines.length} requests, which exceeds the maximum of ${ctx.maxLines}`,
      );
    }
  }
  const createdAt = nowSec(ctx);
  let ttl = DEFAULT_FILE_TTL;
  const seconds = upload.fields.get("expires_after[seconds]");
  if (seconds !== undefined) {
    ttl = Number(seconds);
    if (!Number.isInteger(ttl) || (openai && (ttl < 3600 || ttl > 2_592_000))) {
      throw new EmulatorHttpError(400, `Invalid value for 'expires_after[seconds]': '${seconds}'.`, {
        param: "expires_after.seconds",
      });
    }
  }
  const record: FileRecord = {
    id: newFileId(ctx.flavor),
    kind: "input",
    purpose: purpose ?? "batch",
    filename: file.filename,
    createdAt,
    expiresAt: createdAt + ttl,
    lines: file.lines,
    customIds: file.customIds,
    bytes: file.bytes,
    hidden: false,
  };
  ctx.store.addFile(record);
  ctx.counters.filesUploaded++;
  return json(openai ? 200 : 201, fileObject(ctx.flavor, record));
}

function pageParams(
  ctx: RouteContext,
  query: URLSearchParams,
  max: number,
  dflt: number,
): { limit: number; after?: string } {
  const raw = query.get("limit");
  let limit = dflt;
  if (raw !== null) {
    if (!/^[+-]?\d+$/.test(raw.trim())) {
      throw new EmulatorHttpError(
        400,
        ctx.flavor === "openai"
          ? `Invalid 'limit': '${raw}'.`
          : "Failed to deserialize query string: limit: invalid digit found in string",
        { param: "limit" },
      );
    }
    limit = Math.min(max, Math.max(1, Number(raw)));
  }
  const after = query.get("after") ?? undefined;
  return after ? { limit, after } : { limit };
}

/** One page after the cursor; a malformed Doubleword cursor is ignored, an unknown one ends the list. */
function page<T extends { id: string }>(
  ctx: RouteContext,
  items: T[],
  limit: number,
  after?: string,
): { data: T[]; hasMore: boolean } {
  let start = 0;
  if (after !== undefined && !(ctx.flavor === "doubleword" && !UUID.test(after))) {
    const i = items.findIndex((x) => x.id === after);
    if (i < 0) return { data: [], hasMore: false };
    start = i + 1;
  }
  const data = items.slice(start, start + limit);
  return { data, hasMore: start + limit < items.length };
}

async function listFiles(ctx: RouteContext, { query }: RouteRequest): Promise<Reply> {
  const openai = ctx.flavor === "openai";
  const { limit, after } = pageParams(ctx, query, openai ? 10_000 : 101, openai ? 10_000 : 20);
  const order = query.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") {
    throw new EmulatorHttpError(400, `Invalid order '${order}'. Expected 'asc' or 'desc'`, { param: "order" });
  }
  const purpose = query.get("purpose");
  const files = [...ctx.store.files.values()].filter((f) => !f.hidden && (!purpose || f.purpose === purpose));
  if (order === "desc") files.reverse();
  const { data, hasMore } = page(ctx, files, limit, after);
  return json(
    200,
    listObject(
      ctx.flavor,
      data.map((f) => fileObject(ctx.flavor, f)),
      hasMore,
    ),
  );
}

async function getFile(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, fileObject(ctx.flavor, findFile(ctx, id)));
}

async function getContent(ctx: RouteContext, { id, query }: RouteRequest): Promise<Reply> {
  const file = findFile(ctx, id);
  const batch = file.batchId ? ctx.store.batches.get(file.batchId) : undefined;
  return contentReply(ctx, file, batch, query);
}

async function deleteFile(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  const file = findFile(ctx, id);
  if (ctx.flavor === "doubleword") {
    // docs/protocols.md §7: live batches of a deleted input file are cancelled and lose input_file_id;
    // a deleted output/error file disappears from its batch.
    for (const b of ctx.store.batches.values()) {
      if (b.inputFileId === id) {
        if (b.active) ctx.runner.cancel(b);
        b.inputFileId = "";
      }
      if (b.outputFileId === id) b.outputDeleted = true;
      if (b.errorFileId === id) b.errorDeleted = true;
    }
  }
  ctx.store.removeFile(file.id);
  return json(200, { id: file.id, object: "file", deleted: true });
}

// ---------------------------------------------------------------- batches

/** The body of POST /v1/batches, refused in the flavor's words. */
async function readCreateBatchBody(ctx: RouteContext, req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/([\w.+-]*\+)?json\b/i.test(type)) {
    throw new EmulatorHttpError(415, "Expected request with `Content-Type: application/json`");
  }
  return readJson(req, MAX_JSON_BODY, (problem, detail) => {
    if (problem === "too_large") return new EmulatorHttpError(413, `Request body exceeds ${MAX_JSON_BODY} bytes`);
    return new EmulatorHttpError(
      400,
      ctx.flavor === "openai"
        ? "We could not parse the JSON body of your request."
        : `Failed to parse the request body as JSON: ${detail}`,
    );
  });
}

function windowSeconds(window: string): number {
  return Math.floor((windowToMs(window) ?? 24 * 3_600_000) / 1000);
}

interface CreateBatch {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata: Record<string, string> | null;
}

function parseCreate(ctx: RouteContext, raw: unknown): CreateBatch {
  const openai = ctx.flavor === "openai";
  // Doubleword answers shape errors as axum JSON rejections: 422 text.
  const shapeError = (message: string, param: string) =>
    openai
      ? new EmulatorHttpError(400, message, { param })
      : new EmulatorHttpError(422, `Failed to deserialize the JSON body into the target type: ${message}`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw shapeError("invalid type: expected an object", "body");
  const o = raw as Record<string, unknown>;
  for (const key of ["input_file_id", "endpoint", "completion_window"]) {
    if (o[key] === undefined)
      throw shapeError(openai ? `Missing required parameter: '${key}'.` : `missing field \`${key}\``, key);
    if (typeof o[key] !== "string")
      throw shapeError(
        openai ? `Invalid type for '${key}': expected a string.` : `${key}: invalid type, expected a string`,
        key,
      );
  }
  let metadata: Record<string, string> | null = null;
  if (o.metadata !== undefined && o.metadata !== null) {
    if (typeof o.metadata !== "object" || Array.isArray(o.metadata))
      throw shapeError(
        openai ? "Invalid type for 'metadata': expected an object." : "metadata: invalid type, expected a map",
        "metadata",
      );
    const entries = Object.entries(o.metadata as Record<string, unknown>);
    for (const [k, v] of entries) {
      if (typeof v !== "string")
        throw shapeError(
          openai
            ? `Invalid type for 'metadata.${k}': expected a string.`
            : `metadata.${k}: invalid type, expected a string`,
          "metadata",
        );
      if (openai && (k.length > 64 || v.length > 512))
        throw new EmulatorHttpError(400, "Metadata keys are limited to 64 characters and values to 512.", {
          param: "metadata",
        });
    }
    if (openai && entries.length > 16)
      throw new EmulatorHttpError(400, "Metadata may hold at most 16 key-value pairs.", { param: "metadata" });
    metadata = Object.fromEntries(
      openai
        ? entries
        : entries.filter(([k]) => {
            const norm = k.toLowerCase().replace(/-/g, "_");
            return !DW_RESERVED.has(norm) && !norm.startsWith("dw_") && !norm.startsWith("created_by");
          }),
    ) as Record<string, string>;
  }
  return {
    input_file_id: o.input_file_id as string,
    endpoint: o.endpoint as string,
    completion_window: o.completion_window as string,
    metadata,
  };
}

async function createBatch(ctx: RouteContext, { req }: RouteRequest): Promise<Reply> {
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

async function getBatch(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, batchObject(ctx.flavor, findBatch(ctx, id), nowSec(ctx)));
}

async function listBatches(ctx: RouteContext, { query }: RouteRequest): Promise<Reply> {
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

async function cancelBatch(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  const batch = findBatch(ctx, id);
  ctx.runner.cancel(batch);
  const reply = json(200, batchObject(ctx.flavor, batch, nowSec(ctx)));
  // OpenAI answers `cancelling`; with nothing in flight the batch is `cancelled` by the next read.
  ctx.runner.settle(batch);
  return reply;
}

// ---------------------------------------------------------------- models

/** Many clients probe the model list. The built-in model answers to any name, so `:id` always exists. */
function modelObject(id: string): Record<string, unknown> {
  return { id, object: "model", created: 0, owned_by: "autobatch-emulator" };
}

async function listModels(): Promise<Reply> {
  return json(200, { object: "list", data: [modelObject("autobatch-emulator")] });
}

async function getModel(_ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, modelObject(id));
}

// ---------------------------------------------------------------- table

export interface Route {
  method: string;
  /** Path segments after /v1; ":id" matches one segment. */
  segments: string[];
  key: string;
  handler: Handler;
}

function route(method: string, path: string, handler: Handler): Route {
  return { method, segments: path.split("/").filter(Boolean).slice(1), key: `${method} ${path}`, handler };
}

export const ROUTES: Route[] = [
  route("POST", "/v1/files", uploadFile),
  route("GET", "/v1/files", listFiles),
  route("GET", "/v1/files/:id", getFile),
  route("DELETE", "/v1/files/:id", deleteFile),
  route("GET", "/v1/files/:id/content", getContent),
  route("POST", "/v1/batches", createBatch),
  route("GET", "/v1/batches", listBatches),
  route("GET", "/v1/batches/:id", getBatch),
  route("POST", "/v1/batches/:id/cancel", cancelBatch),
  route("GET", "/v1/models", listModels),
  route("GET", "/v1/models/:id", getModel),
];

/** Matches a method and /v1 path (query stripped, trailing slashes ignored). */
export function matchRoute(method: string, path: string): { route: Route; id: string } | undefined {
  const parts = path.split("/").filter(Boolean);
  if (parts[0] !== "v1") return undefined;
  const rest = parts.slice(1);
  for (const r of ROUTES) {
    if (r.method !== method || r.segments.length !== rest.length) continue;
    let id = "";
    const ok = r.segments.every((seg, i) => {
      if (seg === ":id") {
        try {
          id = decodeURIComponent(rest[i]);
        } catch {
          id = rest[i];
        }
        return true;
      }
      return seg === rest[i];
    });
    if (ok) return { route: r, id };
  }
  return undefined;
}
