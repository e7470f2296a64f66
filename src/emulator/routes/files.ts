// The /v1/files handlers: upload, list, read, content and delete.
import { MultipartError } from "../multipart.js";
import { fileObject, listObject } from "../objects.js";
import { EmulatorHttpError, json, type Reply } from "../reply.js";
import { newFileId, type FileRecord } from "../store.js";
import { contentReply } from "./content.js";
import { findFile, nowSec, type RouteContext, type RouteRequest } from "./context.js";
import { page, pageParams } from "./paging.js";
import { readUpload, type Upload } from "./upload-body.js";

const DEFAULT_FILE_TTL = 30 * 24 * 3600;
const OPENAI_PURPOSES = ["batch", "assistants", "fine-tune", "vision", "user_data", "evals"];

export async function uploadFile(ctx: RouteContext, { req }: RouteRequest): Promise<Reply> {
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

export async function listFiles(ctx: RouteContext, { query }: RouteRequest): Promise<Reply> {
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

export async function getFile(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
  return json(200, fileObject(ctx.flavor, findFile(ctx, id)));
}

export async function getContent(ctx: RouteContext, { id, query }: RouteRequest): Promise<Reply> {
  const file = findFile(ctx, id);
  const batch = file.batchId ? ctx.store.batches.get(file.batchId) : undefined;
  return contentReply(ctx, file, batch, query);
}

export async function deleteFile(ctx: RouteContext, { id }: RouteRequest): Promise<Reply> {
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
