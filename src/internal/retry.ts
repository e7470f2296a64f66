// The one retry policy for every Batch API request (openai-node's: which failures, how long to wait, how often).
import { APIConnectionError, APIError } from "../errors.js";
import { sleep, type Clock } from "./clock.js";

const RETRY_STATUSES = new Set([408, 409, 429]);

export interface RetryBudget {
  /** Retries after the first attempt. */
  maxRetries: number;
  /** Milliseconds all attempts may take together. */
  retryDeadlineMs: number;
}

/** Runs `attempt` until it succeeds, fails for good, runs out of attempts or deadline, or `signal` aborts. */
export async function withRetry<T>(
  clock: Clock,
  budget: RetryBudget,
  signal: AbortSignal | undefined,
  attempt: () => Promise<T>,
): Promise<T> {
  const deadline = clock.Date.now() + budget.retryDeadlineMs;
  for (let retry = 0; ; retry++) {
    try {
      return await attempt();
    } catch (err) {
      const delay = retryDelay(err, retry, clock.Date.now());
      if (delay === undefined || retry >= budget.maxRetries || signal?.aborted) throw err;
      if (clock.Date.now() + delay > deadline) throw err;
      await sleep(clock, delay, signal).catch(() => {
        throw err;
      });
    }
  }
}

/** Milliseconds to wait before retry number `retry` (0-based), or undefined when `err` is final. */
export function retryDelay(err: unknown, retry: number, now: number = Date.now()): number | undefined {
  if (err instanceof APIConnectionError) return backoff(retry);
  if (!(err instanceof APIError) || err.status === undefined) return undefined;
  if (!isRetryableStatus(err.status, err.headers?.get("x-should-retry"))) return undefined;
  return retryAfter(err.headers, now) ?? backoff(retry);
}

/** openai-node's rule: 408, 409, 429 and 5xx are worth a retry, unless `x-should-retry` says otherwise. */
export function isRetryableStatus(status: number, shouldRetry?: string | null): boolean {
  if (shouldRetry === "false") return false;
  return shouldRetry === "true" || RETRY_STATUSES.has(status) || status >= 500;
}

function retryAfter(headers: Headers | undefined, now: number): number | undefined {
  const ms = Number.parseFloat(headers?.get("retry-after-ms") ?? "");
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers?.get("retry-after");
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** openai-node's schedule: 0.5 s doubling to 8 s, minus up to 25 % jitter. */
function backoff(retry: number): number {
  return Math.min(500 * 2 ** retry, 8_000) * (1 - Math.random() * 0.25);
}
