// The multipart body of POST /v1/files, read as it streams in.
import type { IncomingMessage } from "node:http";
import { consumeBody } from "../../server-kit/request-body.js";
import { MultipartParser, boundaryOf } from "../multipart.js";
import { EmulatorHttpError } from "../reply.js";
import { UploadLineSplitter, decodeDw, isBlank, validateDwLine } from "../validate.js";
import type { RouteContext } from "./context.js";

const MULTIPART_OVERHEAD = 10 * 1024;
const MAX_FIELD_BYTES = 64 * 1024;

export interface Upload {
  fields: Map<string, string>;
  file?: { filename: string; lines: string[]; customIds: string[]; bytes: number };
}

/** Reads the multipart body; Doubleword lines are validated as they stream in. */
export async function readUpload(ctx: RouteContext, req: IncomingMessage): Promise<Upload> {
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
