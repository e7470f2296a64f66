// Calls wait here, one partition per (endpoint, model), until a flush trigger turns a partition into a batch file:
// `batchSize` calls, `maxBatchBytes` encoded bytes, `batchWindowMs` since its first call, close(), or a new partition
// beyond `maxBuffers` (the oldest is flushed). A flush hands
// the partition over synchronously, so calls arriving while it uploads start the next file.
// Each line is encoded once, in pieces, straight into the partition's ~1 MB Buffers, which are the file's parts at upload: a
// waiting call keeps no string of its own, and nothing is joined or re-encoded later. A flushed call keeps a view of
// its line until it settles (or its batch drops it), as the line may be sent again in a later file.
import type { Clock } from "../internal/clock.js";
import type { Call } from "./call.js";
import type { Endpoint } from "../internal/endpoints.js";
import type { FlushReason } from "../events.js";
import { LINE_TAIL } from "../internal/jsonl.js";

/** Size of the Buffers lines are written into; a longer line gets a Buffer of its own size. */
const CHUNK_BYTES = 1 << 20;

export interface Flushed {
  endpoint: Endpoint;
  model: string;
  calls: Call[];
  /** The JSONL file, in order. */
  parts: Buffer[];
  bytes: number;
  reason: FlushReason;
}

interface Partition {
  endpoint: Endpoint;
  model: string;
  calls: Call[];
  /** Filled chunks, then `current` up to `used`. */
  chunks: Buffer[];
  current: Buffer | undefined;
  used: number;
  bytes: number;
  /** Calls not yet settled; aborted calls stay in `calls` (and their bytes in the chunks) until the flush. */
  live: number;
  timer: unknown;
}

export interface BufferLimits {
  batchSize: number;
  maxBatchBytes: number;
  batchWindowMs: number;
  /** Partitions open at once; opening one more flushes the oldest. */
  maxBuffers: number;
}

export class CallBuffer {
  readonly #partitions = new Map<string, Partition>();
  readonly #limits: BufferLimits;
  readonly #clock: Clock;
  readonly #onFlush: (flushed: Flushed) => void;
  #size = 0;

  constructor(limits: BufferLimits, clock: Clock, onFlush: (flushed: Flushed) => void) {
    this.#limits = limits;
    this.#clock = clock;
    this.#onFlush = onFlush;
  }

  /** Calls waiting in buffers. */
  get size(): number {
    return this.#size;
  }

  /** Buffers `call`, whose JSONL line is `head` + `body` + LINE_TAIL (`call.bytes` long in UTF-8). */
  add(call: Call, head: string, body: string): void {
    this.#place(call, head, body, undefined);
  }

  /** Buffers again a call whose line failed in an earlier batch: the same bytes go into a later file. */
  requeue(call: Call): void {
    call.owner = undefined;
    this.#place(call, "", "", call.chunk!.subarray(call.offset!, call.offset! + call.bytes));
  }

  /** Writes `line` if given, else head + body + LINE_TAIL (no closure per call: this runs once per call). */
  #place(call: Call, head: string, body: string, line: Buffer | undefined): void {
    const key = `${call.endpoint}\0${call.model}`;
    let p = this.#partitions.get(key);
    if (p && p.live > 0 && p.bytes + call.bytes > this.#limits.maxBatchBytes) {
      this.#flush(key, p, "bytes");
      p = undefined;
    }
    p ??= this.#open(key, call);
    if (!p.current || p.current.length - p.used < call.bytes) {
      if (p.current) p.chunks.push(p.current.subarray(0, p.used));
      p.current = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, call.bytes));
      p.used = 0;
    }
    call.chunk = p.current;
    call.offset = p.used;
    if (line) {
      p.used += line.copy(p.current, p.used);
    } else {
      p.used += p.current.write(head, p.used);
      p.used += p.current.write(body, p.used);
      p.used += p.current.write(LINE_TAIL, p.used);
    }
    p.calls.push(call);
    p.bytes += call.bytes;
    p.live++;
    this.#size++;
    if (p.live >= this.#limits.batchSize) this.#flush(key, p, "size");
  }

  #open(key: string, call: Call): Partition {
    // Map order is opening order: the first partition is the oldest.
    if (this.#partitions.size >= this.#limits.maxBuffers) {
      const [oldestKey, oldest] = this.#partitions.entries().next().value!;
      this.#flush(oldestKey, oldest, "buffers");
    }
    const p: Partition = {
      endpoint: call.endpoint,
      model: call.model,
      calls: [],
      chunks: [],
      current: undefined,
      used: 0,
      bytes: 0,
      live: 0,
      timer: undefined,
    };
    this.#partitions.set(key, p);
    p.timer = this.#clock.setTimeout(() => {
      p.timer = undefined;
      if (this.#partitions.get(key) === p) this.#flush(key, p, "time");
    }, this.#limits.batchWindowMs);
    return p;
  }

  /** An aborted call leaves its buffer; it is never uploaded. Returns false if it was already flushed. */
  remove(call: Call): boolean {
    if (!call.chunk || call.owner) return false;
    const key = `${call.endpoint}\0${call.model}`;
    const p = this.#partitions.get(key);
    if (!p) return false;
    p.bytes -= call.bytes;
    p.live--;
    this.#size--;
    call.chunk = undefined;
    if (p.live === 0) {
      // Nothing left to send: drop the partition and its window timer, which would otherwise hold the process.
      this.#partitions.delete(key);
      this.#clock.clearTimeout(p.timer);
      for (const c of p.calls) c.chunk = undefined;
    }
    return true;
  }

  flushAll(reason: FlushReason): void {
    for (const [key, p] of [...this.#partitions]) this.#flush(key, p, reason);
  }

  /** Hands every waiting call back (close with cancel) and forgets them. */
  drain(): Call[] {
    const calls: Call[] = [];
    for (const p of this.#partitions.values()) {
      this.#clock.clearTimeout(p.timer);
      for (const c of p.calls) {
        c.chunk = undefined;
        if (!c.settled) calls.push(c);
      }
    }
    this.#partitions.clear();
    this.#size = 0;
    return calls;
  }

  /**
   * The last chunk, mostly empty (a batch flushed by its window), is copied to its used size: its lines are kept
   * until their calls settle, and with them the whole chunk (~1 MB per batch, ~4 KB per held serve request).
   */
  #trim(p: Partition): void {
    const current = p.current!;
    const kept = Buffer.allocUnsafeSlow(p.used);
    current.copy(kept, 0, 0, p.used);
    const { calls } = p;
    for (let i = calls.length - 1; i >= 0 && calls[i]!.chunk === current; i--) calls[i]!.chunk = kept;
    p.current = kept;
  }

  #flush(key: string, p: Partition, reason: FlushReason): void {
    this.#partitions.delete(key);
    if (p.timer !== undefined) this.#clock.clearTimeout(p.timer);
    this.#size -= p.live;
    let { calls } = p;
    if (p.current && p.used < p.current.length >> 1) this.#trim(p);
    let parts = p.current ? [...p.chunks, p.current.subarray(0, p.used)] : p.chunks;
    if (p.live !== calls.length) {
      // Rare (an abort before the flush): rebuild the file from the lines of the calls still waiting.
      calls = calls.filter((c) => !c.settled);
      parts = calls.length ? [fileOf(calls)] : [];
    }
    if (calls.length) this.#onFlush({ endpoint: p.endpoint, model: p.model, calls, parts, bytes: p.bytes, reason });
  }
}

/** One file of the calls' lines, in order; each call's view of its line moves into it, so the old chunks may go. */
export function fileOf(calls: readonly Call[]): Buffer {
  const file = Buffer.concat(calls.map((c) => c.chunk!.subarray(c.offset!, c.offset! + c.bytes)));
  let at = 0;
  for (const c of calls) {
    c.chunk = file;
    c.offset = at;
    at += c.bytes;
  }
  return file;
}
