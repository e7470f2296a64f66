// Public types of the local Batch API emulator.

export type Flavor = "doubleword" | "openai";

export interface UpstreamOptions {
  /** Real-time OpenAI-compatible base URL, e.g. "http://127.0.0.1:8000/v1". */
  baseURL: string;
  /**
   * Sent as `Authorization: Bearer <apiKey>` upstream (never the emulator's own key).
   * @default undefined (no Authorization header)
   */
  apiKey?: string;
  /** Lines in flight against the upstream at once. @default 8 */
  concurrency?: number;
}

export interface EmulatorOptions {
  /**
   * Port to listen on; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * Interface to bind; the default accepts loopback connections only.
   * @default "127.0.0.1"
   */
  host?: string;
  /** Which provider's wire behaviour to reproduce. @default "doubleword" */
  flavor?: Flavor;
  /**
   * When set, every /v1 and /_emulator route requires `Authorization: Bearer <apiKey>`.
   * @default undefined (no check; the /_emulator routes are then open only when bound to loopback)
   */
  apiKey?: string;
  /** Query parameter read as the content cursor ("offset" = legacy Doubleword servers). @default "skip" */
  contentCursorParam?: "skip" | "offset";
  /** Lines executed at once by the built-in model. @default 64 */
  concurrency?: number;
  /** Per-line latency in ms; a pair is a uniform random range (seedable). @default 0 */
  latencyMs?: number | [min: number, max: number];
  /** Time a batch stays "validating", in ms. @default 0 */
  validationMs?: number;
  /** Seed for the latency RNG. @default random */
  seed?: number;
  /** Accepted completion windows. @default ["24h", "1h"] */
  completionWindows?: string[];
  /** Largest accepted upload, in bytes (413 above). @default 104857600 (100 MiB) */
  maxFileBytes?: number;
  /**
   * Most lines per batch (openai flavor: `too_many_tasks`; doubleword: 400 at upload).
   * @default 50000 for openai, unlimited for doubleword
   */
  maxLines?: number;
  /**
   * OpenAI flavor: input tokens (whitespace-separated words of the prompt) that one model's unfinished batches may
   * hold together. A batch that would pass it is accepted, then `failed` after validation with
   * `errors.data[0].code = "token_limit_exceeded"` and OpenAI's message.
   * @default undefined (no limit)
   */
  enqueuedTokenLimit?: number;
  /** A batch shows in `GET /v1/batches` only this many ms after its creation (a list that lags behind). @default 0 */
  listLagMs?: number;
  /**
   * Execute lines against a real-time server instead of the built-in model.
   * @default undefined (the built-in model)
   */
  upstream?: UpstreamOptions;
  /** Clock in ms for created_at/expires_at and expiry. @default Date.now */
  now?: () => number;
  /**
   * Bound on stored file bytes; oldest finished batches and files are evicted beyond it.
   * @default 1073741824 (1 GiB)
   */
  maxStoredBytes?: number;
}

export interface EmulatorCounters {
  /** Requests per route key, e.g. "POST /v1/files", "GET /v1/files/:id/content"; unmatched paths count as "unmatched". */
  requests: Record<string, number>;
  batchesCreated: number;
  filesUploaded: number;
  /** Body bytes produced by the content route, per file id. */
  bytesServed: Record<string, number>;
  /** Lines produced by the content route, per file id. */
  linesServed: Record<string, number>;
  /** Lines executed to a result (built-in model or upstream). */
  linesExecuted: number;
  faultsInjected: number;
}

interface FaultBase {
  /** Route key to match, e.g. "POST /v1/batches" or "GET /v1/files/:id/content"; "*" matches every /v1 route. */
  route: string;
  /** Only requests whose `:id` path parameter equals this. */
  id?: string;
  /** How many matching requests fire the fault; null = until removed. @default 1 */
  times?: number | null;
  /** Matching requests to let through before firing. @default 0 */
  after?: number;
}

export interface StatusFault extends FaultBase {
  /** Answer with this status, in the flavor's error shape unless `body` is given. */
  status: number;
  headers?: Record<string, string>;
  body?: string | Record<string, unknown>;
  /** Perform the real operation first, then answer with the fault (an ambiguous failure). */
  afterHandler?: boolean;
}

export interface ResetFault extends FaultBase {
  /** Destroy the socket without answering. */
  reset: true;
  afterHandler?: boolean;
}

export interface DelayFault extends FaultBase {
  /** Answer this many ms late. */
  delayMs: number;
}

export interface CutFault extends FaultBase {
  /** Send the headers and the first N body bytes, then destroy the socket (meant for the content route). */
  cutAfterBytes: number;
}

export interface TrickleFault extends FaultBase {
  /** Send the headers, then the body one byte every this many ms (a body that never stalls long enough to time out). */
  trickleMs: number;
}

export type FaultSpec = StatusFault | ResetFault | DelayFault | CutFault | TrickleFault;

export interface FaultController {
  /** Registers a fault; returns its id. */
  add(spec: FaultSpec): string;
  remove(id: string): boolean;
  clear(): void;
  /** Active faults with how many times each has fired. */
  list(): Array<FaultSpec & { faultId: string; fired: number }>;
}

export interface Emulator {
  /** What clients use as their base URL, with `/v1`: e.g. "http://127.0.0.1:PORT/v1". */
  baseURL: string;
  /** The server's origin, without `/v1` (where the `/_emulator` admin routes live): e.g. "http://127.0.0.1:PORT". */
  origin: string;
  port: number;
  /** Stops accepting, destroys open sockets, stops workers. */
  close(): Promise<void>;
  /** Live counters. */
  counters: EmulatorCounters;
  faults: FaultController;
  /** performance.timeOrigin + performance.now() when the line's result was first appended to an output/error file. */
  lineAvailableAt(customId: string): number | undefined;
  /** Forces the completion window of a batch to pass now (openai flavor: the batch becomes `expired`). */
  expireNow(batchId: string): void;
}
