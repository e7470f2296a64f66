// The input file, read as a stream (never whole): a first pass checks every line, hashes the bytes and tallies the
// plan, keeping only the custom_ids; a second pass hands the requests over one by one.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { ENDPOINTS, type Endpoint, isEndpoint, prepareBody } from "../../internal/endpoints.js";
import { InvalidParamsError } from "../../errors.js";
import { LINE_TAIL, lineHead } from "../../internal/jsonl.js";

/** The endpoints the engine can batch. */
/** The provider's limit on a custom_id. */
const MAX_CUSTOM_ID = 64;
/** Problems printed before the rest are only counted. */
export const SHOWN_PROBLEMS = 20;

export interface RequestLine {
  customId: string;
  endpoint: Endpoint;
  model: string;
  body: Record<string, unknown>;
  /** The body's JSON as it goes into the batch line. */
  json: string;
}

/** Lines, bytes and characters of one (endpoint, model) group: what --dry-run prints. */
export interface Group {
  endpoint: Endpoint;
  model: string;
  lines: number;
  /** UTF-8 bytes of the lines as they go into batch files. */
  bytes: number;
  /** Characters of the bodies, the basis of the token estimate. */
  chars: number;
}

export interface InputScan {
  /** sha256 of the file's bytes: which input a state belongs to. */
  sha256: string;
  /** Request lines (blank lines are not counted). */
  lines: number;
  /** `line N: what is wrong`, the first SHOWN_PROBLEMS of them. */
  problems: string[];
  problemCount: number;
  groups: Group[];
}

/** One line's request, or what is wrong with it. */
export function checkLine(text: string): RequestLine | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not a JSON object";
  const o = v as Record<string, unknown>;
  for (const field of ["custom_id", "method", "url", "body"])
    if (!(field in o)) return `missing required field "${field}"`;
  if (typeof o.custom_id !== "string" || o.custom_id === "") return "custom_id must be a non-empty string";
  if (o.custom_id.length > MAX_CUSTOM_ID)
    return `custom_id is ${o.custom_id.length} characters, more than ${MAX_CUSTOM_ID}`;
  if (o.method !== "POST") return `method must be "POST" (got ${JSON.stringify(o.method)})`;
  if (!isEndpoint(o.url)) return `url ${JSON.stringify(o.url)} is not a supported endpoint (${ENDPOINTS.join(", ")})`;
  const endpoint = o.url;
  const body = o.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "body must be a JSON object";
  let json: string;
  try {
    json = prepareBody(endpoint, body, true).json;
  } catch (err) {
    if (err instanceof InvalidParamsError) return `body: ${err.message}`;
    throw err;
  }
  return { customId: o.custom_id, endpoint, model: (body as { model: string }).model, body: body as never, json };
}

/** Non-blank lines of a file with their 1-based numbers; `onBytes` sees every chunk read. */
async function* lines(path: string, onBytes?: (chunk: Buffer) => void): AsyncGenerator<[number, string]> {
  const stream = createReadStream(path);
  if (onBytes) stream.on("data", (c) => onBytes(c as Buffer));
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() !== "") yield [n, line];
  }
}

/**
 * The first pass: every line checked, custom_ids unique, each line small enough for a batch file, the bytes hashed
 * and the plan tallied.
 */
export async function scanInput(path: string, maxBatchBytes: number): Promise<InputScan> {
  const hash = createHash("sha256");
  const seen = new Map<string, number>();
  const groups = new Map<string, Group>();
  const problems: string[] = [];
  let problemCount = 0;
  let count = 0;
  const problem = (n: number, what: string) => {
    if (problemCount++ < SHOWN_PROBLEMS) problems.push(`line ${n}: ${what}`);
  };
  for await (const [n, text] of lines(path, (c) => hash.update(c))) {
    count++;
    const req = checkLine(text);
    if (typeof req === "string") {
      problem(n, req);
      continue;
    }
    const first = seen.get(req.customId);
    if (first !== undefined) {
      problem(n, `custom_id ${JSON.stringify(req.customId)} is also on line ${first}`);
      continue;
    }
    seen.set(req.customId, n);
    const bytes =
      Buffer.byteLength(lineHead(req.customId, req.endpoint)) + Buffer.byteLength(req.json) + LINE_TAIL.length;
    if (bytes > maxBatchBytes) {
      problem(n, `the line is ${bytes} bytes encoded, more than --max-batch-bytes (${maxBatchBytes})`);
      continue;
    }
    const key = `${req.endpoint} ${req.model}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { endpoint: req.endpoint, model: req.model, lines: 0, bytes: 0, chars: 0 }));
    g.lines++;
    g.chars += req.json.length;
    g.bytes += bytes;
  }
  return { sha256: hash.digest("hex"), lines: count, problems, problemCount, groups: [...groups.values()] };
}

/** The second pass: the requests of a file the first pass found valid, one at a time. */
export async function* readRequests(path: string): AsyncGenerator<RequestLine> {
  for await (const [n, text] of lines(path)) {
    const req = checkLine(text);
    // The file changed between the passes: stop rather than send something unchecked.
    if (typeof req === "string") throw new Error(`${path} changed while running: line ${n}: ${req}`);
    yield req;
  }
}
