// JSONL both ways: request lines are encoded once into strings (their UTF-8 size counted as they are made), result
// streams are split into lines as Buffers without ever holding the whole file.

/** One request line, newline included. `bodyJson` is already-serialised JSON. */
export function encodeLine(customId: string, url: string, bodyJson: string): string {
  return `{"custom_id":${JSON.stringify(customId)},"method":"POST","url":${JSON.stringify(url)},"body":${bodyJson}}\n`;
}

const NL = 10;

/**
 * Splits a byte stream into lines (without the `\n`; a trailing `\r` is dropped). A line split across chunks is
 * reassembled. Only `\n`-terminated lines are yielded: bytes after the last `\n` are left in `tail.rest` for the
 * caller to judge (a file's unterminated last line, or a line cut short). If the source throws, lines already
 * yielded were complete: a resumed read starts at the next unread line.
 */
export async function* splitLines(source: AsyncIterable<Buffer | Uint8Array>, tail: { rest?: Buffer } = {}): AsyncGenerator<Buffer> {
  let pieces: Buffer[] = [];
  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let start = 0;
    let nl = chunk.indexOf(NL, start);
    while (nl !== -1) {
      let line = chunk.subarray(start, nl);
      if (pieces.length) {
        pieces.push(line);
        line = Buffer.concat(pieces);
        pieces = [];
      }
      yield stripCR(line);
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) pieces.push(chunk.subarray(start));
  }
  tail.rest = pieces.length ? stripCR(Buffer.concat(pieces)) : undefined;
}

function stripCR(line: Buffer): Buffer {
  return line.length && line[line.length - 1] === 13 ? line.subarray(0, -1) : line;
}
