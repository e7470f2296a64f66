// Calls wait here, one partition per (endpoint, model), until a flush trigger turns a partition into a batch file:
// `batchSize` calls, `maxBatchBytes` encoded bytes, `batchWindowMs` since its first call, or close(). A flush hands
// the partition over synchronously, so calls arriving while it uploads start the next file.
import type { Clock } from "./clock.js";
import type { Call } from "./call.js";
import type { Endpoint } from "./endpoints.js";
import type { FlushReason } from "./events.js";

export interface Flushed {
  endpoint: Endpoint;
  model: string;
  calls: Call[];
  bytes: number;
  reason: FlushReason;
}

interface Partition {
  endpoint: Endpoint;
  model: string;
  calls: Call[];
  bytes: number;
  /** Calls not yet settled (aborted calls stay in `calls` until the flush filters them out). */
  live: number;
  timer: unknown;
}

export interface BufferLimits {
  batchSize: number;
  maxBatchBytes: number;
  batchWindowMs: number;
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

  add(call: Call): void {
    const key = `${call.endpoint}\0${call.model}`;
    let p = this.#partitions.get(key);
    if (p && p.live > 0 && p.bytes + call.bytes > this.#limits.maxBatchBytes) {
      this.#flush(key, p, "bytes");
      p = undefined;
    }
    if (!p) {
      p = { endpoint: call.endpoint, model: call.model, calls: [], bytes: 0, live: 0, timer: undefined };
      this.#partitions.set(key, p);
      const partition = p;
      p.timer = this.#clock.setTimeout(() => {
        partition.timer = undefined;
        if (this.#partitions.get(key) === partition) this.#flush(key, partition, "time");
      }, this.#limits.batchWindowMs);
    }
    p.calls.push(call);
    p.bytes += call.bytes;
    p.live++;
    this.#size++;
    if (p.live >= this.#limits.batchSize) this.#flush(key, p, "size");
  }

  /** An aborted call leaves its buffer; it is never uploaded. Returns false if it was already flushed. */
  remove(call: Call): boolean {
    const p = this.#partitions.get(`${call.endpoint}\0${call.model}`);
    if (!p || !p.calls.includes(call)) return false;
    p.bytes -= call.bytes;
    p.live--;
    this.#size--;
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
      for (const c of p.calls) if (!c.settled) calls.push(c);
    }
    this.#partitions.clear();
    this.#size = 0;
    return calls;
  }

  #flush(key: string, p: Partition, reason: FlushReason): void {
    this.#partitions.delete(key);
    if (p.timer !== undefined) this.#clock.clearTimeout(p.timer);
    this.#size -= p.live;
    const calls = p.live === p.calls.length ? p.calls : p.calls.filter((c) => !c.settled);
    if (calls.length) this.#onFlush({ endpoint: p.endpoint, model: p.model, calls, bytes: p.bytes, reason });
  }
}
