// JSONL both ways: request lines are encoded once into strings (their UTF-8 size counted as they are made), result
// streams are split into lines as Buffers without ever holding the whole file.

/** One request line, newline included. `bodyJson` is already-serialised JSON. */
export function encodeLine(customId: string, url: string, bodyJson: string): string {
  return `{"custom_id":${JSON.stringify(customId)},"method":"POST","url":${JSON.stringify(url)},"body":${bodyJson}}\n`;
}

const NL = 10;
const CR = 13;

/**
 * Splits a byte stream into lines as chunks arrive, without the `\n` (a trailing `\r` is dropped), each decoded
 * once from its bytes. A line split across chunks is reassembled first, so a multi-byte character cut in two is
 * intact. Synchronous and callback-based: a result file has one line per call, and an await per line would cost a
 * promise round-trip each. Bytes after the last `\n` stay for `rest()` to judge (a file's unterminated last line,
 * or a line cut short).
 */
export class LineSplitter {
  #pieces: Buffer[] = [];

  push(chunk: Buffer, onLine: (line: string) => void): void {
    let start = 0;
    let nl = chunk.indexOf(NL, start);
    while (nl !== -1) {
      if (this.#pieces.length) {
        this.#pieces.push(chunk.subarray(start, nl));
        const line = Buffer.concat(this.#pieces);
        this.#pieces = [];
        onLine(decode(line, 0, line.length));
      } else {
        onLine(decode(chunk, start, nl));
      }
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) this.#pieces.push(chunk.subarray(start));
  }

  /** The unterminated remainder, if any. */
  rest(): string | undefined {
    if (!this.#pieces.length) return undefined;
    const tail = Buffer.concat(this.#pieces);
    return decode(tail, 0, tail.length);
  }
}

function decode(buf: Buffer, start: number, end: number): string {
  return buf.toString("utf8", start, end > start && buf[end - 1] === CR ? end - 1 : end);
}
