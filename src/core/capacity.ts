// Calls refused by a provider's enqueued-token limit (OpenAI, Azure: the batch is accepted, then `failed` with
// `token_limit_exceeded`) wait here, per endpoint and model, until capacity frees up: when one of this client's own
// batches for that model finishes, or, with none running, after a backoff. Then their lines go into a new batch.
// Waiting spends none of their line retries; each call is bounded by its deadline.
import type { Clock } from "../internal/clock.js";
import type { Call } from "./call.js";

/** First backoff when no batch of the model runs (ms); doubles per refusal in a row, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 60_000;
const MAX_BACKOFF_MS = 15 * 60_000;

export interface CapacityHooks {
  /** Batches of this client for the partition that are being submitted or run (they hold capacity). */
  running(endpoint: string, model: string): number;
  /** Puts waiting calls' lines back into the buffer. */
  release(calls: Call[]): void;
  /** Rejects a call whose deadline passed while it waited. */
  expire(call: Call): void;
  /** Rejects a call its caller released (its signal aborted) while it waited. */
  reject(call: Call, reason: unknown): void;
}

/** How a wait ends: when one of `runningBatches` finishes, or (none running) after `retryInMs`. */
export interface Wait {
  runningBatches: number;
  retryInMs?: number;
}

interface Waiting {
  endpoint: string;
  model: string;
  calls: Call[];
  timer: unknown;
}

export class CapacityWaits {
  readonly #clock: Clock;
  readonly #hooks: CapacityHooks;
  readonly #waiting = new Map<string, Waiting>();
  /** Refusals in a row per partition with no batch of it running: the backoff's exponent. */
  readonly #refusals = new Map<string, number>();
  /** The owner of a waiting call, so its caller can leave while it waits. */
  readonly #holder: NonNullable<Call["owner"]>;

  constructor(clock: Clock, hooks: CapacityHooks) {
    this.#clock = clock;
    this.#hooks = hooks;
    this.#holder = { release: (call, reason) => hooks.reject(call, reason) };
  }

  /** Calls waiting for capacity. */
  get size(): number {
    let n = 0;
    for (const w of this.#waiting.values()) for (const c of w.calls) if (!c.settled) n++;
    return n;
  }

  /** Holds `calls` (all of one endpoint and model) until capacity frees up or their deadline passes. */
  hold(endpoint: string, model: string, calls: Call[]): Wait {
    const key = `${endpoint}\0${model}`;
    let w = this.#waiting.get(key);
    if (!w) this.#waiting.set(key, (w = { endpoint, model, calls: [], timer: undefined }));
    for (const c of calls) {
      c.owner = this.#holder;
      w.calls.push(c);
    }
    const running = this.#hooks.running(endpoint, model);
    const now = this.#clock.Date.now();
    const deadline = Math.min(...w.calls.map((c) => c.deadlineAt ?? Number.POSITIVE_INFINITY));
    let wait = deadline - now;
    if (running === 0) {
      const refusals = this.#refusals.get(key) ?? 0;
      this.#refusals.set(key, refusals + 1);
      wait = Math.min(wait, FIRST_BACKOFF_MS * 2 ** refusals, MAX_BACKOFF_MS);
    }
    this.#clock.clearTimeout(w.timer);
    w.timer = Number.isFinite(wait) ? this.#clock.setTimeout(() => this.#release(key), Math.max(0, wait)) : undefined;
    return running === 0 ? { runningBatches: 0, retryInMs: Math.max(0, wait) } : { runningBatches: running };
  }

  /** A batch of this partition finished: capacity it held is free again. */
  freed(endpoint: string, model: string): void {
    const key = `${endpoint}\0${model}`;
    this.#refusals.delete(key);
    if (this.#waiting.has(key)) this.#release(key);
  }

  /** Hands every waiting call back (close with cancel) and forgets them. */
  drain(): Call[] {
    const calls: Call[] = [];
    for (const w of this.#waiting.values()) {
      this.#clock.clearTimeout(w.timer);
      calls.push(...w.calls.filter((c) => !c.settled));
    }
    this.#waiting.clear();
    return calls;
  }

  #release(key: string): void {
    const w = this.#waiting.get(key);
    if (!w) return;
    this.#waiting.delete(key);
    this.#clock.clearTimeout(w.timer);
    const now = this.#clock.Date.now();
    const ready: Call[] = [];
    for (const c of w.calls) {
      if (c.settled) continue;
      if ((c.deadlineAt ?? Number.POSITIVE_INFINITY) <= now) this.#hooks.expire(c);
      else ready.push(c);
    }
    if (ready.length) this.#hooks.release(ready);
  }
}
