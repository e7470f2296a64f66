// Progressive reading of an output or error file: from the cursor on, streamed and split into lines as they arrive.
// `?skip=N&offset=N` serves current Doubleword servers (skip) and older ones (offset); others ignore both. The
// cursor moves past the lines actually received, capped by `X-Last-Line` when the server sends it: a response cut
// short (with or without a transport error) never moves it past a line we did not get whole, so nothing is skipped
// and nothing is handed over twice. The cursor is its batch's: this file reports where it ends, never moves it.
import { APIConnectionError, AutoBatchError } from "../errors.js";
import { LineSplitter } from "../internal/jsonl.js";
import type { BatchHttp } from "./slots.js";
import { spend } from "./turns.js";

export interface FileCursor {
  readonly fileId: string;
  /** Lines of the file already handed over (the next `skip`). */
  readonly next: number;
}

export interface ReadOutcome {
  /** Where the cursor stands after this read: past every line handed over, never past one not received whole. */
  next: number;
  /** Set when the response ended short (a transport error or fewer lines than `X-Last-Line` promised). */
  cut?: AutoBatchError;
  /** `X-Incomplete` as sent: true while the server may append lines, undefined when absent. */
  incomplete: boolean | undefined;
  /** Complete lines received. */
  lines: number;
}

/** Running totals of what was downloaded, cut responses included. */
export interface ReadStats {
  requests: number;
  bytes: number;
  lines: number;
}

/**
 * Reads what is new in the file from `cursor.next` on, calling `onLine` for each non-blank line and adding to
 * `stats`. Throws on HTTP errors (nothing was handed over); a cut response is reported in the outcome.
 */
export async function readNewLines(
  transport: BatchHttp,
  cursor: FileCursor,
  onLine: (line: string) => void,
  stats: ReadStats,
  signal?: AbortSignal,
): Promise<ReadOutcome> {
  const start = cursor.next;
  stats.requests++;
  const res = await transport.stream({
    method: "GET",
    path: `/files/${encodeURIComponent(cursor.fileId)}/content`,
    query: start > 0 ? { skip: start, offset: start } : undefined,
    signal,
  });
  let lines = 0;
  const onWhole = (line: string) => {
    lines++;
    stats.lines++;
    if (line.length) onLine(line);
  };
  const splitter = new LineSplitter(transport.maxResultLineBytes);
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      stats.bytes += chunk.length;
      const before = lines;
      splitter.push(chunk, onWhole);
      // Buffered lines are read in microtasks: the app gets its turns of the event loop (turns.ts).
      const wait = spend(lines - before);
      if (wait) await wait;
    }
  } catch (err) {
    const cut =
      err instanceof AutoBatchError
        ? err
        : transport.connectionError({ method: "GET", path: `/files/${cursor.fileId}/content`, signal }, err);
    return { next: start + lines, cut, incomplete: undefined, lines };
  }
  const lastLine = Number.parseInt(res.headers.get("x-last-line") ?? "", 10);
  // Never below the request's skip (spec §6): one that is would pin the cursor, and the file be read again each poll.
  const promised = Number.isFinite(lastLine) && lastLine >= start ? lastLine - start : undefined;
  // A last line without "\n" is whole only if it parses and the server does not promise more lines than that.
  let cut = false;
  const rest = splitter.rest();
  if (rest?.length) {
    if ((promised === undefined || promised > lines) && isJson(rest)) {
      onWhole(rest);
    } else {
      cut = true;
    }
  }
  cut ||= promised !== undefined && promised > lines;
  const next = start + (promised === undefined ? lines : Math.min(promised, lines));
  const flag = res.headers.get("x-incomplete")?.toLowerCase();
  const incomplete = flag === "true" ? true : flag === "false" ? false : undefined;
  if (!cut) return { next, incomplete, lines };
  return {
    next,
    incomplete,
    lines,
    cut: new APIConnectionError(
      `GET /files/${cursor.fileId}/content: response ended after ${lines} complete lines (of ${promised ?? "?"}); resuming at line ${next}`,
    ),
  };
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
