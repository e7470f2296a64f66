// Client retries carrying the same `Idempotency-Key` attach to the call already made instead of paying for it again.
// A key is remembered while its call runs and for `ttlMs` after it settles (bounded by `maxKeys`, oldest first).
// Its call is aborted only when every waiter has gone and none came back within `ttlMs`: an SDK that timed out
// retries within seconds, and should find its call, not a fresh one.
import { HttpError } from "./errors.js";

interface Entry<T> {
  fingerprint: string;
  result: Promise<T>;
  controller: AbortController;
  waiters: number;
  settled: boolean;
  expiresAt: number;
  abandonTimer?: NodeJS.Timeout;
}

export interface Attached<T> {
  result: Promise<T>;
  /** True when this request joined a call started by an earlier one. */
  reused: boolean;
  /** This waiter is gone (its client disconnected); idempotent. */
  leave(): void;
}

export interface IdempotencyOptions {
  ttlMs: number;
  maxKeys: number;
  /** Whether a failed call's outcome is worth replaying; retryable failures are forgotten so a retry runs anew. */
  keepFailure(err: unknown): boolean;
  now?: () => number;
}

const MAX_KEY_LENGTH = 255;

export class IdempotencyCache<T> {
  // Settled entries are re-inserted when they settle, so among them map order is expiry order.
  readonly #entries = new Map<string, Entry<T>>();
  readonly #o: IdempotencyOptions;
  readonly #now: () => number;

  constructor(options: IdempotencyOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Joins the call known under `key`, or starts one with `start(signal)`. The same key with a different
   * `fingerprint` (another request body) is refused with 422 rather than answered with someone else's result.
   */
  attach(key: string, fingerprint: string, start: (signal: AbortSignal) => Promise<T>): Attached<T> {
    if (key.length > MAX_KEY_LENGTH) {
      throw new HttpError(
        400,
        {
          message: `Idempotency-Key is longer than ${MAX_KEY_LENGTH} characters.`,
          param: "Idempotency-Key",
          code: "invalid_idempotency_key",
        },
        { retry: false },
      );
    }
    this.#sweep();
    let entry = this.#entries.get(key);
    const reused = entry !== undefined;
    if (entry && entry.fingerprint !== fingerprint) {
      throw new HttpError(
        422,
        {
          message:
            "This Idempotency-Key was already used with a different request body; use a new key for a new request.",
          param: "Idempotency-Key",
          code: "idempotency_key_reused",
        },
        { retry: false },
      );
    }
    if (!entry) entry = this.#start(key, fingerprint, start);
    entry.waiters++;
    clearTimeout(entry.abandonTimer);
    entry.abandonTimer = undefined;
    let left = false;
    const e = entry;
    return {
      result: e.result,
      reused,
      leave: () => {
        if (left) return;
        left = true;
        if (--e.waiters > 0 || e.settled) return;
        e.abandonTimer = setTimeout(() => this.#abandon(key, e), this.#o.ttlMs);
        e.abandonTimer.unref();
      },
    };
  }

  #start(key: string, fingerprint: string, start: (signal: AbortSignal) => Promise<T>): Entry<T> {
    const controller = new AbortController();
    const entry: Entry<T> = {
      fingerprint,
      result: start(controller.signal),
      controller,
      waiters: 0,
      settled: false,
      expiresAt: Infinity,
    };
    this.#entries.set(key, entry);
    const settled = (keep: boolean) => {
      entry.settled = true;
      clearTimeout(entry.abandonTimer);
      if (this.#entries.get(key) !== entry) return;
      this.#entries.delete(key);
      if (!keep) return;
      entry.expiresAt = this.#now() + this.#o.ttlMs;
      this.#entries.set(key, entry);
      this.#evict();
    };
    entry.result.then(
      () => settled(true),
      (err: unknown) => settled(!controller.signal.aborted && this.#o.keepFailure(err)),
    );
    return entry;
  }

  #abandon(key: string, entry: Entry<T>): void {
    if (entry.waiters > 0 || entry.settled) return;
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
    entry.controller.abort();
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (!entry.settled) continue;
      if (entry.expiresAt > now) break;
      this.#entries.delete(key);
    }
  }

  #evict(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= this.#o.maxKeys) break;
      if (entry.settled) this.#entries.delete(key);
    }
  }
}
