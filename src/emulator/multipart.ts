// A small streaming multipart/form-data parser: file parts are handed on chunk by chunk, so a
// 100 MB upload never sits in memory twice; header blocks and text fields are bounded.

export interface PartInfo {
  name: string;
  filename?: string;
}

export interface PartHandler {
  start(part: PartInfo): void;
  data(chunk: Buffer): void;
  end(): void;
}

export class MultipartError extends Error {}

const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

type State = "preamble" | "afterDelimiter" | "headers" | "body" | "done";

export class MultipartParser {
  readonly #delimiter: Buffer;
  readonly #handler: PartHandler;
  // The body's first delimiter has no leading CRLF; pretending one was seen keeps one search rule.
  #buf: Buffer = Buffer.from("\r\n");
  #state: State = "preamble";

  constructor(boundary: string, handler: PartHandler) {
    this.#delimiter = Buffer.from(`\r\n--${boundary}`);
    this.#handler = handler;
  }

  write(chunk: Buffer): void {
    if (this.#state === "done") return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#run();
  }

  end(): void {
    if (this.#state !== "done") throw new MultipartError("Unexpected end of multipart body");
  }

  #run(): void {
    for (;;) {
      const buf = this.#buf;
      switch (this.#state) {
        case "preamble": {
          const i = buf.indexOf(this.#delimiter);
          if (i < 0) {
            this.#keepTail(this.#delimiter.length - 1);
            return;
          }
          this.#buf = buf.subarray(i + this.#delimiter.length);
          this.#state = "afterDelimiter";
          break;
        }
        case "afterDelimiter": {
          if (buf.length < 2) return;
          if (buf[0] === 0x2d && buf[1] === 0x2d) {
            this.#state = "done";
            this.#buf = Buffer.alloc(0);
            return;
          }
          // Transport padding (spaces/tabs) may precede the CRLF.
          const nl = buf.indexOf(CRLF);
          if (nl < 0) {
            if (buf.length > 256) throw new MultipartError("Malformed multipart delimiter");
            return;
          }
          this.#buf = buf.subarray(nl + 2);
          this.#state = "headers";
          break;
        }
        case "headers": {
          // An empty header block ("\r\n" right away) is legal.
          const end = buf.subarray(0, 2).equals(CRLF) ? -2 : buf.indexOf(HEADER_END);
          if (end === -1) {
            if (buf.length > MAX_HEADER_BYTES) throw new MultipartError("Multipart part headers too large");
            return;
          }
          const raw = end === -2 ? "" : buf.subarray(0, end).toString("latin1");
          this.#buf = buf.subarray(end === -2 ? 2 : end + 4);
          this.#handler.start(parsePartHeaders(raw));
          this.#state = "body";
          break;
        }
        case "body": {
          const i = buf.indexOf(this.#delimiter);
          if (i < 0) {
            const safe = buf.length - (this.#delimiter.length - 1);
            if (safe > 0) {
              this.#handler.data(buf.subarray(0, safe));
              this.#buf = buf.subarray(safe);
            }
            return;
          }
          if (i > 0) this.#handler.data(buf.subarray(0, i));
          this.#handler.end();
          this.#buf = buf.subarray(i + this.#delimiter.length);
          this.#state = "afterDelimiter";
          break;
        }
        case "done":
          return;
      }
    }
  }

  #keepTail(n: number): void {
    if (this.#buf.length > n) this.#buf = this.#buf.subarray(this.#buf.length - n);
  }
}

function parsePartHeaders(raw: string): PartInfo {
  for (const line of raw.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "content-disposition") continue;
    const value = line.slice(colon + 1);
    const name = param(value, "name");
    if (name === undefined) break;
    const filename = param(value, "filename");
    return filename === undefined ? { name } : { name, filename };
  }
  throw new MultipartError("Multipart part without a Content-Disposition name");
}

function param(value: string, key: string): string | undefined {
  const m = new RegExp(`(?:^|;)\\s*${key}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, "i").exec(value);
  if (!m) return undefined;
  const quoted = m[1];
  // Header bytes were read as latin1; reinterpret as UTF-8 (browsers and undici send UTF-8 names).
  const raw = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : (m[2] ?? "").trim();
  return Buffer.from(raw, "latin1").toString("utf8");
}
