// The body of POST /v1/batches: read and checked, refused in the flavor's words.
import type { IncomingMessage } from "node:http";
import { readJson } from "../../server-kit/request-body.js";
import { EmulatorHttpError } from "../reply.js";
import type { RouteContext } from "./context.js";

const MAX_JSON_BODY = 1024 * 1024;
const DW_RESERVED = new Set([
  "created_by_email",
  "context_name",
  "context_type",
  "request_source",
  "created_by",
  "dw_user_agent",
]);

/** The body of POST /v1/batches, refused in the flavor's words. */
export async function readCreateBatchBody(ctx: RouteContext, req: IncomingMessage): Promise<unknown> {
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

export interface CreateBatch {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata: Record<string, string> | null;
}

export function parseCreate(ctx: RouteContext, raw: unknown): CreateBatch {
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
