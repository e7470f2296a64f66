// AutoBatcherOptions resolved: checked by the schema, then the defaults and the environment applied, here only.
import type { Clock } from "./internal/clock.js";
import type { AutoBatchEvent } from "./events.js";
import {
  DEFAULTS,
  InvalidOptionsError,
  type AutoBatcherOptions,
  type DispatcherLike,
  type RequestIdentity,
} from "./options.js";
import { optionsSchema, parseOptions } from "./options-schema.js";

export interface ResolvedOptions {
  apiKey: string;
  baseURL: string;
  organization?: string;
  project?: string;
  defaultHeaders: Record<string, string>;
  metadata: Record<string, string>;
  batchSize: number;
  maxBatchBytes: number;
  batchWindowMs: number;
  pollIntervalMs: number;
  completionWindow: string;
  maxRetries: number;
  retryDeadlineMs: number;
  maxConcurrency: number;
  requestTimeoutMs: number;
  requestDeadlineMs: number;
  maxResponseBytes: number;
  maxResultLineBytes: number;
  deadlineGraceMs: number;
  lineRetries: number;
  maxBuffers: number;
  store?: string;
  storeRetentionMs: number;
  requestIdentity: RequestIdentity;
  onEvent?: (event: AutoBatchEvent) => void;
  clock?: Clock;
  dispatcher?: DispatcherLike;
}

const env = (name: string): string | undefined => {
  const v = process.env[name]?.trim();
  return v ? v : undefined;
};

const TITLE = "Invalid AutoBatcher options";

/** An InvalidOptionsError about one option, found after the schema's checks. */
const invalidOption = (option: string, message: string) =>
  new InvalidOptionsError(`${TITLE}:\n  ${option}: ${message}`, [{ path: [option], message }]);

export function resolveOptions(input: AutoBatcherOptions = {}): ResolvedOptions {
  const o = parseOptions(optionsSchema, input, TITLE);
  const apiKey = o.apiKey ?? env("OPENAI_API_KEY");
  if (!apiKey) {
    throw invalidOption("apiKey", "missing; pass `apiKey` or set OPENAI_API_KEY");
  }
  const baseURL = o.baseURL ?? env("OPENAI_BASE_URL") ?? DEFAULTS.baseURL;
  if (!/^https?:\/\//.test(baseURL)) {
    // Not echoed: a mistyped URL may carry credentials.
    throw invalidOption("baseURL", "must be an http(s) URL (from OPENAI_BASE_URL or the option)");
  }
  const resolved: ResolvedOptions = {
    apiKey,
    baseURL: baseURL.replace(/\/+$/, ""),
    organization: o.organization ?? env("OPENAI_ORG_ID"),
    project: o.project ?? env("OPENAI_PROJECT_ID"),
    defaultHeaders: o.defaultHeaders ?? {},
    metadata: o.metadata ?? {},
    batchSize: o.batchSize ?? DEFAULTS.batchSize,
    maxBatchBytes: o.maxBatchBytes ?? DEFAULTS.maxBatchBytes,
    batchWindowMs: o.batchWindowMs ?? DEFAULTS.batchWindowMs,
    pollIntervalMs: o.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
    completionWindow: o.completionWindow ?? DEFAULTS.completionWindow,
    maxRetries: o.maxRetries ?? DEFAULTS.maxRetries,
    retryDeadlineMs: o.retryDeadlineMs ?? DEFAULTS.retryDeadlineMs,
    maxConcurrency: o.maxConcurrency ?? DEFAULTS.maxConcurrency,
    requestTimeoutMs: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    requestDeadlineMs: o.requestDeadlineMs ?? DEFAULTS.requestDeadlineMs,
    maxResponseBytes: o.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    maxResultLineBytes: o.maxResultLineBytes ?? DEFAULTS.maxResultLineBytes,
    deadlineGraceMs: o.deadlineGraceMs ?? DEFAULTS.deadlineGraceMs,
    lineRetries: o.lineRetries ?? DEFAULTS.lineRetries,
    maxBuffers: o.maxBuffers ?? DEFAULTS.maxBuffers,
    store: o.store,
    storeRetentionMs: o.storeRetentionMs ?? DEFAULTS.storeRetentionMs,
    requestIdentity: o.requestIdentity ?? DEFAULTS.requestIdentity,
    onEvent: o.onEvent,
    clock: o.clock,
    dispatcher: o.dispatcher,
  };
  // Readable where needed, but absent from JSON.stringify, util.inspect and spreads of the options.
  Object.defineProperty(resolved, "apiKey", { value: apiKey, enumerable: false });
  // A PostgreSQL URL may carry a password.
  Object.defineProperty(resolved, "store", { value: o.store, enumerable: false });
  return resolved;
}

/** "24h" → 86,400,000; "90m", "3600s", "2d" likewise. Unknown forms (e.g. "background") → undefined: no deadline. */
export function windowToMs(window: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(window);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
