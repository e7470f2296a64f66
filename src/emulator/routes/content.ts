// GET /v1/files/{id}/content. Doubleword: the skip/limit/search protocol with X-Incomplete and
// X-Last-Line (docs/protocols.md §6). OpenAI: the whole file, no headers of the protocol.
import { isRunning } from "../objects.js";
import { EmulatorHttpError, type BodyWriter, type Reply } from "../reply.js";
import type { BatchRecord, FileRecord } from "../store.js";
import type { EmulatorCounters, Flavor } from "../types.js";

export interface ContentContext {
  flavor: Flavor;
  cursorParam: "skip" | "offset";
  counters: EmulatorCounters;
}

const CHUNK_CHARS = 64 * 1024;
const MAX_PAGE = 101;

function intParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^[+-]?\d+$/.test(raw.trim())) {
    throw new EmulatorHttpError(400, `Failed to deserialize query string: ${name}: invalid digit found in string`);
  }
  return Number(raw);
}

function count(ctx: ContentContext, fileId: string, lines: number, bytes: number): void {
  ctx.counters.linesServed[fileId] = (ctx.counters.linesServed[fileId] ?? 0) + lines;
  ctx.counters.bytesServed[fileId] = (ctx.counters.bytesServed[fileId] ?? 0) + bytes;
}

/** Streams `lines[from..to)` (or the listed indexes), each followed by "\n", in bounded chunks. */
function streamLines(
  ctx: ContentContext,
  file: FileRecord,
  indexes: Iterable<number>,
): (out: BodyWriter) => Promise<void> {
  return async (out) => {
    let buf = "";
    let lines = 0;
    const flush = async (): Promise<boolean> => {
      // Encoded once: its length is the count, and the bytes are what is sent.
      const chunk = Buffer.from(buf);
      buf = "";
      count(ctx, file.id, lines, chunk.length);
      lines = 0;
      return out.write(chunk);
    };
    for (const i of indexes) {
      buf += file.lines[i] + "\n";
      lines++;
      if (buf.length >= CHUNK_CHARS && !(await flush())) return;
    }
    if (buf) await flush();
  };
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i++) yield i;
}

export function contentReply(
  ctx: ContentContext,
  file: FileRecord,
  batch: BatchRecord | undefined,
  query: URLSearchParams,
): Reply {
  if (ctx.flavor === "openai") {
    return {
      status: 200,
      headers: { "content-type": "application/octet-stream" },
      stream: streamLines(ctx, file, range(0, file.lines.length)),
    };
  }
  // The other cursor name is ignored, as serde ignores unknown query keys.
  const skip = Math.max(0, intParam(query, ctx.cursorParam) ?? 0);
  const rawLimit = intParam(query, "limit");
  const search = query.get("search")?.toLowerCase();
  const running = file.kind !== "input" && batch !== undefined && isRunning(batch);
  // Snapshot: lines appended while this answer is written belong to the next read.
  const available = file.lines.length;
  let indexes: number[] | undefined;
  if (search) {
    indexes = [];
    for (let i = 0; i < available; i++) if (file.customIds[i].toLowerCase().includes(search)) indexes.push(i);
  }
  const total = indexes ? indexes.length : available;
  const at = (k: number) => (indexes ? indexes[k] : k);
  const headers: Record<string, string> = { "content-type": "application/x-ndjson" };

  if (rawLimit !== undefined) {
    const limit = Math.min(MAX_PAGE, Math.max(1, rawLimit));
    const end = Math.min(total, skip + limit);
    let text = "";
    for (let k = skip; k < end; k++) text += file.lines[at(k)] + "\n";
    const body = Buffer.from(text);
    const served = Math.max(0, end - skip);
    count(ctx, file.id, served, body.length);
    headers["x-incomplete"] = String(total > skip + limit || running);
    headers["x-last-line"] = String(skip + served);
    return { status: 200, headers, body };
  }

  headers["x-incomplete"] = String(running);
  if (!search && file.kind !== "input") headers["x-last-line"] = String(Math.max(skip, total));
  const picked = indexes ? indexes.slice(skip) : range(skip, total);
  return { status: 200, headers, stream: streamLines(ctx, file, picked) };
}
