// Progressive reading of an output or error file: from the cursor on, streamed and split into lines as they arrive.
// `?skip=N&offset=N` serves current Doubleword servers (skip) and older ones (offset); others ignore both. The
// cursor moves to `X-Last-Line` when the server sends it, else by the lines counted; after a cut stream it moves
// only past complete lines, so nothing is skipped and nothing is handed over twice.
import { splitLines } from "./jsonl.js";
import type { Transport } from "./http.js";

export interface FileCursor {
  readonly fileId: string;
  /** Lines of the file already handed over (the next `skip`). */
  next: number;
}

export interface ReadOutcome {
  /** `X-Incomplete` as sent: true while the server may append lines, undefined when absent. */
  incomplete: boolean | undefined;
  lines: number;
  bytes: number;
}

/** Reads what is new in the file, calling `onLine` for each non-blank line. Throws on HTTP errors or a cut stream. */
export async function readNewLines(transport: Transport, cursor: FileCursor, onLine: (line: Buffer) => void, signal?: AbortSignal): Promise<ReadOutcome> {
  const start = cursor.next;
  const res = await transport.stream({
    method: "GET",
    path: `/files/${encodeURIComponent(cursor.fileId)}/content`,
    query: start > 0 ? { skip: start, offset: start } : undefined,
    signal,
  });
  let lines = 0;
  let bytes = 0;
  try {
    for await (const line of splitLines(countBytes(res.body, (n) => (bytes += n)))) {
      lines++;
      if (line.length) onLine(line);
    }
  } catch (err) {
    cursor.next = start + lines;
    throw err;
  }
  const lastLine = Number.parseInt(res.headers.get("x-last-line") ?? "", 10);
  cursor.next = Number.isFinite(lastLine) && lastLine >= start ? lastLine : start + lines;
  const flag = res.headers.get("x-incomplete")?.toLowerCase();
  return { incomplete: flag === "true" ? true : flag === "false" ? false : undefined, lines, bytes };
}

async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}
