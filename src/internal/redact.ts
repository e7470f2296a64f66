// The key's one redactor. Every byte the provider sends (JSON bodies, error bodies, result streams, headers) passes
// through it inside the transport before anything parses it, so no message, event, log, store or answer built from
// provider text can carry the key, whichever path builds it.
import { Transform, type TransformCallback } from "node:stream";

export const REDACTED = "[redacted]";
/** Shorter secrets are not redacted: replacing a 1–3 character string would garble every text. */
const MIN_SECRET = 4;
const NL = 10;

export class Redactor {
  readonly #secret: string;
  readonly #needle: Buffer;

  constructor(secret: string) {
    this.#secret = secret.length >= MIN_SECRET ? secret : "";
    this.#needle = Buffer.from(this.#secret);
  }

  text(text: string): string {
    return this.#secret && text.includes(this.#secret) ? text.split(this.#secret).join(REDACTED) : text;
  }

  /** A byte stream with the secret replaced, also where it straddles two chunks. */
  stream(): Transform {
    const needle = this.#needle;
    const replacement = Buffer.from(REDACTED);
    if (!needle.length) return new Transform({ transform: (chunk, _enc, done) => done(null, chunk) });
    const lineSafe = !needle.includes(NL);
    // The last `needle.length - 1` bytes of what arrived are held back: the secret may start there.
    let tail: Buffer = Buffer.alloc(0);
    return new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
        const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
        let from = 0;
        for (let at = buf.indexOf(needle); at !== -1; at = buf.indexOf(needle, from)) {
          if (at > from) this.push(buf.subarray(from, at));
          this.push(replacement);
          from = at + needle.length;
        }
        // A key holds no newline, so whole lines are released at once: a stream cut after them loses none of them.
        const lineEnd = lineSafe ? buf.lastIndexOf(NL) + 1 : 0;
        const keep = Math.max(from, lineEnd, buf.length - (needle.length - 1));
        if (keep > from) this.push(buf.subarray(from, keep));
        tail = Buffer.from(buf.subarray(keep));
        done();
      },
      flush(done: TransformCallback) {
        done(null, tail.length ? tail : undefined);
      },
    });
  }
}
