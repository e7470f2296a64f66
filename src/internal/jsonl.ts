// JSONL both ways: request lines are written straight into the buffer's bytes (the body's JSON is never concatenated
// into a line string first), result streams are split into lines without ever holding the whole file.

const afterId = new Map<string, string>();

/** A request line is `lineHead(…)`, the body's JSON, then `LINE_TAIL`. */
export function lineHead(customId: string, url: string): string {
  let rest = afterId.get(url);
  if (rest === undefined) afterId.set(url, (rest = `,"method":"POST","url":${JSON.stringify(url)},"body":`));
  return `{"custom_id":${JSON.stringify(customId)}${rest}`;
}

export const LINE_TAIL = "}\n";

const NL = 10;

/** Where an oversized line's custom_id is looked for: OpenAI and Doubleword put it first, after `id`. */
const ID_PREFIX_BYTES = 4_096;

/**
 * Splits a byte stream into lines as chunks arrive, without the `\n` (a trailing `\r` is dropped). Each chunk's
 * complete lines are decoded with one call and handed over as slices of that string: decoding line by line cost a
 * native call per line. A line split across chunks is reassembled from its bytes first, so a multi-byte character
 * cut in two is intact (`\n` never occurs inside one). Synchronous and callback-based: a result file has one line
 * per call, and an await per line would cost a promise round-trip each. Bytes after the last `\n` stay for `rest()`
 * to judge (a file's unterminated last line, or a line cut short).
 *
 * A line longer than `maxLineBytes` is never held: as soon as it crosses the cap it is handed over as a
 * `result_line_too_large` error line for its custom_id (read from its first bytes) and the rest of it is skipped, so
 * it counts as read and a resumed read starts after it.
 */
export class LineSplitter {
  readonly #max: number;
  #pieces: Buffer[] = [];
  #held = 0;
  /** Inside an oversized line already handed over: bytes are dropped up to its `\n`. */
  #skipping = false;

  constructor(maxLineBytes = Number.POSITIVE_INFINITY) {
    this.#max = maxLineBytes;
  }

  push(chunk: Buffer, onLine: (line: string) => void): void {
    if (this.#skipping) {
      const nl = chunk.indexOf(NL);
      if (nl === -1) return;
      this.#skipping = false;
      chunk = chunk.subarray(nl + 1);
    }
    const last = chunk.lastIndexOf(NL);
    if (last === -1) {
      this.#hold(chunk, onLine);
      return;
    }
    let start = 0;
    if (this.#pieces.length) {
      start = chunk.indexOf(NL) + 1;
      this.#hold(chunk.subarray(0, start - 1), onLine);
      if (this.#skipping) this.#skipping = false;
      else {
        const line = Buffer.concat(this.#pieces);
        onLine(trimCR(line.toString("utf8")));
      }
      this.#pieces = [];
      this.#held = 0;
    }
    if (start <= last) {
      if (last - start > this.#max) this.#pushLong(chunk.subarray(start, last + 1), onLine);
      else {
        const text = chunk.toString("utf8", start, last);
        let from = 0;
        for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
          onLine(trimCR(text.slice(from, nl)));
          from = nl + 1;
        }
        onLine(trimCR(text.slice(from)));
      }
    }
    if (last + 1 < chunk.length) this.#hold(chunk.subarray(last + 1), onLine);
  }

  /** The unterminated remainder, if any. */
  rest(): string | undefined {
    if (!this.#pieces.length) return undefined;
    return trimCR(Buffer.concat(this.#pieces).toString("utf8"));
  }

  /** Lines of a chunk larger than the cap (a small cap, or a huge chunk): each measured in bytes. */
  #pushLong(lines: Buffer, onLine: (line: string) => void): void {
    let from = 0;
    for (let nl = lines.indexOf(NL); nl !== -1; nl = lines.indexOf(NL, from)) {
      if (nl - from > this.#max)
        onLine(oversizedLine(lines.subarray(from, Math.min(nl, from + ID_PREFIX_BYTES)), this.#max));
      else onLine(trimCR(lines.toString("utf8", from, nl)));
      from = nl + 1;
    }
  }

  /** Keeps part of an unfinished line, or hands it over as oversized the moment it crosses the cap. */
  #hold(piece: Buffer, onLine: (line: string) => void): void {
    if (this.#skipping) return;
    this.#pieces.push(piece);
    this.#held += piece.length;
    if (this.#held <= this.#max) return;
    const head = Buffer.concat(this.#pieces).subarray(0, ID_PREFIX_BYTES);
    this.#pieces = [];
    this.#held = 0;
    this.#skipping = true;
    onLine(oversizedLine(head, this.#max));
  }
}

/** The error line an oversized result line is replaced with: it fails only its own call, clearly, and is not retried. */
function oversizedLine(head: Buffer, max: number): string {
  const customId = recoverCustomId(head.toString("utf8"));
  return JSON.stringify({
    custom_id: customId ?? null,
    response: null,
    error: {
      code: "result_line_too_large",
      message: `the provider's result line for this call is larger than maxResultLineBytes (${max} bytes); it was skipped`,
    },
  });
}

/** The custom_id of a line that does not parse as a whole (or was not read whole), if its text still shows one. */
export function recoverCustomId(text: string): string | undefined {
  const m = /"custom_id"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text);
  if (!m) return undefined;
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return undefined;
  }
}

function trimCR(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}
