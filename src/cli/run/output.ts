// An append-only JSONL result file (--output or --errors). Opening it repairs a torn last line (a write cut by a
// kill or a crash) and lists the custom_ids already written, which is what a rerun skips. Lines are queued and
// written together once per turn of the event loop, each whole: a line is in the file entirely or not at all.
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { createInterface } from "node:readline";

/** Bytes read at a time while looking back for the last newline. */
const TAIL_CHUNK = 64 * 1024;

export class ResultFile {
  readonly path: string;
  /** Lines in the file when it was opened (after repair). */
  readonly existing: number;
  /** Bytes of a torn last line cut off when the file was opened; 0 when it was whole. */
  readonly repairedBytes: number;
  readonly #fd: number;
  #queued: string[] = [];
  #scheduled = false;

  private constructor(path: string, fd: number, existing: number, repairedBytes: number) {
    this.path = path;
    this.#fd = fd;
    this.existing = existing;
    this.repairedBytes = repairedBytes;
  }

  /** Opens (or creates) the file, repairs its tail, and adds every custom_id it holds to `ids`. */
  static async open(path: string, ids: Set<string>): Promise<ResultFile> {
    const fd = openSync(path, "a+");
    try {
      const repaired = cutTornTail(fd);
      const existing = fstatSync(fd).size > 0 ? await collectIds(path, ids) : 0;
      return new ResultFile(path, fd, existing, repaired);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Queues one line (without its newline); it reaches the file before the next turn of the event loop ends. */
  append(line: string): void {
    this.#queued.push(line);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes what is queued, in one write. */
  flush(): void {
    this.#scheduled = false;
    if (!this.#queued.length) return;
    const text = `${this.#queued.join("\n")}\n`;
    this.#queued = [];
    const bytes = Buffer.from(text);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.#fd, bytes, done);
  }

  close(): void {
    this.flush();
    closeSync(this.#fd);
  }
}

/** Truncates the file after its last newline; returns the bytes cut. */
function cutTornTail(fd: number): number {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(TAIL_CHUNK);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_CHUNK);
    const n = readSync(fd, buf, 0, end - start, start);
    const nl = buf.subarray(0, n).lastIndexOf(10);
    if (nl !== -1) {
      const keep = start + nl + 1;
      if (keep < size) ftruncateSync(fd, keep);
      return size - keep;
    }
    end = start;
  }
  if (size > 0) ftruncateSync(fd, 0);
  return size;
}

async function collectIds(path: string, ids: Set<string>): Promise<number> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === "") continue;
    let id: unknown;
    try {
      id = (JSON.parse(line) as { custom_id?: unknown }).custom_id;
    } catch {
      id = undefined;
    }
    if (typeof id !== "string") throw new Error(`${path} line ${n} is not a result line: not resuming into this file`);
    ids.add(id);
  }
  return n;
}

/** Whether a result file already exists with something in it. */
export function hasContent(path: string): boolean {
  return existsSync(path) && statSync(path).size > 0;
}
