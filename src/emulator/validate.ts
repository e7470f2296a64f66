// Input-file line handling: splitting an upload into lines, Doubleword's synchronous
// upload-time checks (docs/protocols.md §3, errors as `Line N: ...` text) and OpenAI's asynchronous
// batch-time checks (errors as `errors.data[]`).
import { EmulatorHttpError } from "./reply.js";

/** Urls Doubleword accepts in lines and as batch `endpoint` (its default `allowed_url_paths`). */
export const DW_URLS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"];
/** OpenAI's batch `endpoint` enum. */
export const OPENAI_URLS = [
  "/v1/responses",
  "/v1/chat/completions",
  "/v1/embeddings",
  "/v1/completions",
  "/v1/moderations",
  "/v1/images/generations",
  "/v1/images/edits",
  "/v1/videos",
];

const MAX_LINE_BYTES = 10 * 1024 * 1024;
const MAX_CUSTOM_ID_BYTES = 64;
// A valid HTTP header value: visible ASCII, space and tab.
const HEADER_SAFE = /^[\t\x20-\x7e]*$/;

/**
 * Splits an uploaded input file on "\n" and hands each line on as bytes (without "\n" or a trailing "\r") with its
 * byte offset, refusing a line over the size cap. Bytes, not strings, unlike the client's result LineSplitter: the
 * upload checks need each line's offset and must see invalid UTF-8 themselves.
 */
export class UploadLineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #offset = 0;
  constructor(private readonly onLine: (line: Buffer, offset: number) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      const line = this.#pending.length ? Buffer.concat([...this.#pending, piece]) : piece;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#emit(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#pendingBytes += rest.length;
      if (this.#pendingBytes > MAX_LINE_BYTES + 1) {
        throw new EmulatorHttpError(400, `Line exceeds the maximum size of ${MAX_LINE_BYTES} bytes`);
      }
      // Copy: the caller's chunk buffer may be reused.
      this.#pending.push(Buffer.from(rest));
    }
  }

  end(): void {
    if (this.#pending.length) this.#emit(Buffer.concat(this.#pending));
    this.#pending = [];
  }

  #emit(line: Buffer): void {
    const offset = this.#offset;
    this.#offset += line.length + 1;
    this.onLine(line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line, offset);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

/** Decodes one line, Doubleword-style: invalid UTF-8 rejects the upload. */
export function decodeDw(line: Buffer, n: number, offset: number): string {
  try {
    return utf8.decode(line);
  } catch {
    throw new EmulatorHttpError(400, `File contains invalid UTF-8 on/near line ${n} at byte offset ${offset}`);
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "sequence";
  if (typeof v === "number") return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "boolean") return `boolean \`${v}\``;
  return "map";
}

/** Validates one non-blank Doubleword input line (N = its 1-based index among non-blank lines); returns its custom_id. */
export function validateDwLine(text: string, n: number, byteLength: number): string {
  if (byteLength > MAX_LINE_BYTES)
    throw new EmulatorHttpError(400, `Line ${n}: Request body exceeds the maximum size of ${MAX_LINE_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new EmulatorHttpError(400, `Invalid JSON on line ${n}: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new EmulatorHttpError(
      400,
      `Invalid JSON on line ${n}: invalid type: ${typeName(v)}, expected struct OpenAIBatchRequest`,
    );
  }
  const o = v as Record<string, unknown>;
  for (const field of ["custom_id", "method", "url", "body"]) {
    if (!(field in o)) throw new EmulatorHttpError(400, `Invalid JSON on line ${n}: missing field \`${field}\``);
  }
  for (const field of ["custom_id", "method", "url"]) {
    if (typeof o[field] !== "string") {
      throw new EmulatorHttpError(
        400,
        `Invalid JSON on line ${n}: invalid type: ${typeName(o[field])}, expected a string`,
      );
    }
  }
  const body = o.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new EmulatorHttpError(400, `Invalid JSON on line ${n}: invalid type: ${typeName(body)}, expected a map`);
  }
  const customId = o.custom_id as string;
  if (Buffer.byteLength(customId) > MAX_CUSTOM_ID_BYTES) {
    throw new EmulatorHttpError(400, `Line ${n}: custom_id exceeds the maximum length of ${MAX_CUSTOM_ID_BYTES} bytes`);
  }
  if (!HEADER_SAFE.test(customId)) {
    throw new EmulatorHttpError(
      400,
      `Line ${n}: custom_id contains characters that are not allowed (visible ASCII only)`,
    );
  }
  if ((o.method as string).toUpperCase() !== "POST") {
    throw new EmulatorHttpError(
      400,
      `Line ${n}: Unsupported HTTP method '${o.method as string}'. Only POST is supported`,
    );
  }
  if (!DW_URLS.includes(o.url as string)) {
    throw new EmulatorHttpError(
      400,
      `Line ${n}: Unsupported URL path '${o.url as string}'. Allowed: ${DW_URLS.join(", ")}`,
    );
  }
  if (typeof (body as Record<string, unknown>).model !== "string") {
    throw new EmulatorHttpError(400, `Line ${n}: Missing 'model' field in request body`);
  }
  return customId;
}

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

// OpenAI reports a bounded number of line errors; so do we (a 50k-line bad file stays small).
const MAX_REPORTED_ERRORS = 1000;

/** OpenAI's asynchronous check of a whole input file against the batch endpoint; with no errors, `customIds` is every line's. */
export function validateOpenAiLines(
  lines: readonly string[],
  endpoint: string,
  maxLines: number,
): { errors: BatchError[]; model?: string; customIds: string[] } {
  if (lines.length === 0) {
    return {
      errors: [{ code: "empty_file", message: "The batch input file is empty.", param: null, line: null }],
      customIds: [],
    };
  }
  if (lines.length > maxLines) {
    return {
      errors: [
        {
          code: "too_many_tasks",
          message: `The batch input file contains ${lines.length} requests; the maximum is ${maxLines}.`,
          param: null,
          line: null,
        },
      ],
      customIds: [],
    };
  }
  const errors: BatchError[] = [];
  const customIds: string[] = [];
  const seen = new Set<string>();
  let model: string | undefined;
  const push = (code: string, message: string, param: string | null, line: number) => {
    if (errors.length < MAX_REPORTED_ERRORS) errors.push({ code, message, param, line });
  };
  lines.forEach((text, i) => {
    const line = i + 1;
    let o: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
      o = v as Record<string, unknown>;
    } catch {
      push("invalid_json_line", `This line is not parseable as valid JSON.`, null, line);
      return;
    }
    const body = o.body as Record<string, unknown> | undefined;
    if (
      typeof o.custom_id !== "string" ||
      typeof o.url !== "string" ||
      typeof body !== "object" ||
      body === null ||
      Array.isArray(body)
    ) {
      push(
        "invalid_json_line",
        "The line is missing one of the required fields custom_id, method, url, body.",
        null,
        line,
      );
      return;
    }
    if (typeof o.method !== "string" || o.method !== "POST") {
      push("invalid_json_line", "Only the POST method is supported.", "method", line);
      return;
    }
    if (seen.has(o.custom_id)) {
      push("duplicate_custom_id", `The custom_id '${o.custom_id}' is not unique within the batch.`, "custom_id", line);
      return;
    }
    seen.add(o.custom_id);
    customIds.push(o.custom_id);
    if (o.url !== endpoint) {
      push("url_mismatch", `The url '${o.url}' does not match the batch endpoint '${endpoint}'.`, "url", line);
      return;
    }
    if (typeof body.model !== "string") {
      push("invalid_json_line", "The request body is missing the 'model' field.", "body.model", line);
      return;
    }
    if (model === undefined) model = body.model;
    else if (body.model !== model) {
      push(
        "model_mismatch",
        `The model '${body.model}' differs from '${model}'; a batch may use only one model.`,
        "body.model",
        line,
      );
    }
  });
  return model === undefined ? { errors, customIds } : { errors, model, customIds };
}
