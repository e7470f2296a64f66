// The one way writes reach the store: queued, grouped (everything queued while a write is in flight goes into the
// next transaction), in order (a batch's intent before its updates), and retried when the store fails, with a
// warning, while the calls keep settling from the provider.
import type { Clock } from "../internal/clock.js";
import type { BatchIntent, BatchUpdate, FoundLine, Store } from "./types.js";

const RETRY_MS = 1_000;
const RESULTS_PER_WRITE = 5_000;

type Op =
  | { kind: "intent"; intent: BatchIntent; done: (taken?: Map<string, FoundLine>) => void }
  | { kind: "update"; update: BatchUpdate }
  | { kind: "release"; keys: string[] };

export interface WriterContext {
  clock: Clock;
  owner: string;
  leaseMs: number;
  warn: (message: string) => void;
  /** A write that carried results or ends succeeded: calls waiting on the store may now have their answer. */
  wrote: () => void;
}

export class StoreWriter {
  readonly #ready: Promise<Store>;
  readonly #ctx: WriterContext;
  #queue: Op[] = [];
  #running: Promise<void> | undefined;
  #retry: unknown;
  #failing = false;
  #scheduled = false;
  #stopped = false;
  /** Result lines queued since the last write. */
  #results = 0;

  constructor(ready: Promise<Store>, ctx: WriterContext) {
    this.#ready = ready;
    this.#ctx = ctx;
  }

  /**
   * Resolves once the intent was written, with the lines it found taken (see Store.recordIntent), or once its first
   * attempt failed, with none (it is retried in the background).
   */
  intent(intent: BatchIntent): Promise<Map<string, FoundLine> | undefined> {
    return new Promise((done) => this.#push({ kind: "intent", intent, done }));
  }

  /**
   * Result lines alone wait for the batch's next snapshot (a read ends by moving its cursor), so a whole read is one
   * transaction; past RESULTS_PER_WRITE of them, a long read is written in parts.
   */
  update(update: BatchUpdate): void {
    if (this.#stopped) return;
    this.#queue.push({ kind: "update", update });
    const resultsOnly = !update.snapshot && !update.terminal;
    if (resultsOnly && ++this.#results < RESULTS_PER_WRITE) return;
    this.#schedule();
  }

  release(keys: string[]): void {
    this.#push({ kind: "release", keys });
  }

  /** Writes everything queued; resolves when the queue is empty or the store failed again. */
  async flush(): Promise<void> {
    this.#ctx.clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    while (this.#running) await this.#running;
    if (this.#queue.length) await this.#run();
  }

  /** Stops retrying and takes no more writes (the store is closing); returns how many writes were left unmade. */
  stop(): number {
    this.#stopped = true;
    this.#ctx.clock.clearTimeout(this.#retry);
    this.#retry = 0;
    const left = this.#queue.length;
    this.#queue = [];
    return left;
  }

  #push(op: Op): void {
    if (this.#stopped) {
      if (op.kind === "intent") op.done();
      return;
    }
    this.#queue.push(op);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#running || this.#retry !== undefined) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#run();
    });
  }

  #run(): Promise<void> {
    if (this.#running || this.#queue.length === 0) return this.#running ?? Promise.resolve();
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#queue.length && this.#retry === undefined) void this.#run();
    });
    return this.#running;
  }

  async #drain(): Promise<void> {
    const ops = this.#queue;
    this.#queue = [];
    this.#results = 0;
    let i = 0;
    let notify = false;
    try {
      const store = await this.#ready;
      while (i < ops.length) {
        const op = ops[i]!;
        if (op.kind === "intent") {
          op.done(await store.recordIntent(op.intent, this.#ctx.owner, this.#ctx.leaseMs));
          i++;
        } else if (op.kind === "release") {
          await store.release(this.#ctx.owner, op.keys);
          i++;
        } else {
          let j = i;
          while (j < ops.length && ops[j]!.kind === "update") j++;
          const updates = merge(ops.slice(i, j).map((o) => (o as { update: BatchUpdate }).update));
          await store.record(updates);
          notify ||= updates.some((u) => u.terminal || u.results?.length || u.retried?.length);
          i = j;
        }
      }
      if (this.#failing) this.#ctx.warn(`store ${store.location}: writes succeed again`);
      this.#failing = false;
    } catch (err) {
      // Keep what was not written, ahead of what came since; a waiting intent is released to go on uploading.
      this.#queue = [...ops.slice(i), ...this.#queue];
      for (const op of ops.slice(i)) if (op.kind === "intent") op.done();
      this.#ctx.warn(`${(err as Error).message}; ${this.#queue.length} write(s) kept, retrying in ${RETRY_MS} ms`);
      this.#failing = true;
      if (this.#stopped) return;
      this.#retry = this.#ctx.clock.setTimeout(() => {
        this.#retry = undefined;
        void this.#run();
      }, RETRY_MS);
    }
    if (notify) this.#ctx.wrote();
  }
}

/** One update per batch: the latest snapshot, every result and retried line, ended if any said so. */
function merge(updates: BatchUpdate[]): BatchUpdate[] {
  const byKey = new Map<string, BatchUpdate>();
  for (const u of updates) {
    const m = byKey.get(u.key);
    if (!m) {
      byKey.set(u.key, { ...u, results: u.results && [...u.results], retried: u.retried && [...u.retried] });
      continue;
    }
    if (u.snapshot) m.snapshot = u.snapshot;
    if (u.results?.length) (m.results ??= []).push(...u.results);
    if (u.retried?.length) (m.retried ??= []).push(...u.retried);
    if (u.terminal) m.terminal = true;
  }
  return [...byKey.values()];
}
