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

/**
 * Splits a byte stream into lines as chunks arrive, without the `\n` (a trailing `\r` is dropped). Each chunk's
 * complete lines are decoded with one call and handed over as slices of that string: decoding line by line cost a
 * native call per line. A line split across chunks is reassembled from its bytes first, so a multi-byte character
 * cut in two is intact (`\n` never occurs inside one). Synchronous and callback-based: a result file has one line
 * per call, and an await per line would cost a promise round-trip each. Bytes after the last `\n` stay for `rest()`
 * to judge (a file's unterminated last line, or a line cut short).
 */
export class LineSplitter {
  #pieces: Buffer[] = [];

  push(chunk: Buffer, onLine: (line: string) => void): void {
    const last = chunk.lastIndexOf(NL);
    if (last === -1) {
      this.#pieces.push(chunk);
      return;
    }
    let start = 0;
    if (this.#pieces.length) {
      start = chunk.indexOf(NL) + 1;
      this.#pieces.push(chunk.subarray(0, start - 1));
      const line = Buffer.concat(this.#pieces);
      this.#pieces = [];
      onLine(trimCR(line.toString("utf8")));
    }
    if (start <= last) {
      const text = chunk.toString("utf8", start, last);
      let from = 0;
      for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
        onLine(trimCR(text.slice(from, nl)));
        from = nl + 1;
      }
      onLine(trimCR(text.slice(from)));
    }
    if (last + 1 < chunk.length) this.#pieces.push(chunk.subarray(last + 1));
  }

  /** The unterminated remainder, if any. */
  rest(): string | undefined {
    if (!this.#pieces.length) return undefined;
    return trimCR(Buffer.concat(this.#pieces).toString("utf8"));
  }
}

function trimCR(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}
