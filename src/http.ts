// The one door to the provider: undici requests against `baseURL`, one retry policy for every Batch API call, and
// one mapping from any error body shape (OpenAI JSON, Doubleword JSON-with-string-error, plain text) to APIError.
import { Agent, request, type Dispatcher } from "undici";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import type { z } from "zod";
import { sleep, type Clock } from "./clock.js";
import { APIConnectionError, APIConnectionTimeoutError, APIError, AutoBatchError, type ProviderError } from "./errors.js";
import type { ResolvedOptions } from "./options.js";

const RETRY_STATUSES = new Set([408, 409, 429]);
const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT", "ETIMEDOUT"]);
/** Error messages quote at most this much of a provider's body. */
const MAX_QUOTED_BODY = 1_000;
/** Largest body `passthrough` reads (model lists are far smaller). */
const MAX_PASSTHROUGH_BODY = 10_000_000;

export interface RequestSpec {
  method: "GET" | "POST";
  /** Path below baseURL, starting with "/" (never an absolute URL: the key goes to baseURL's origin only). */
  path: string;
  query?: Record<string, string | number>;
  json?: unknown;
  upload?: FileUpload;
  /** Gives up (retries included) when aborted. */
  signal?: AbortSignal;
}

/** A multipart/form-data body: plain fields, then one file. */
export interface FileUpload {
  fields: Record<string, string>;
  filename: string;
  contentType: string;
  /** The file's bytes, in order. Sent as they are (never joined or copied), so retries can send them again. */
  parts: readonly Buffer[];
}

export interface StreamResponse {
  status: number;
  headers: Headers;
  body: Readable;
}

export class Transport {
  readonly #o: ResolvedOptions;
  readonly #clock: Clock;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #origin: string;
  readonly #basePath: string;

  constructor(options: ResolvedOptions, clock: Clock) {
    this.#o = options;
    this.#clock = clock;
    this.#ownsDispatcher = !options.dispatcher;
    this.#dispatcher = options.dispatcher ?? new Agent({ keepAliveTimeout: 4_000, connections: options.maxConcurrency * 2 });
    const base = new URL(options.baseURL);
    this.#origin = base.origin;
    this.#basePath = base.pathname.replace(/\/+$/, "");
  }

  /** A JSON request, retried per the policy, its 2xx body checked against `schema`. */
  async json<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    return this.withRetry(spec, () => this.jsonOnce(spec, schema));
  }

  /** One attempt of `json`, for callers that wrap their own retry logic around it. */
  async jsonOnce<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    const res = await this.#send(spec);
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      // A 2xx cut after its headers is as ambiguous as a reset: the operation may have happened upstream.
      throw this.#connectionError(spec, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new APIError(res.statusCode, undefined, `${spec.method} ${spec.path}: response is not JSON: ${this.quote(text)}`);
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      throw new APIError(res.statusCode, undefined, `${spec.method} ${spec.path}: unexpected response shape: ${checked.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`);
    }
    return checked.data;
  }

  /** A streamed 2xx response (the caller must consume or destroy `body`); only reaching the headers is retried. */
  async stream(spec: RequestSpec): Promise<StreamResponse> {
    return this.withRetry(spec, async () => {
      const res = await this.#send(spec);
      return { status: res.statusCode, headers: toHeaders(res.headers), body: res.body };
    });
  }

  /**
   * One GET below `/models` (no retries), its answer handed back whatever the status, the key redacted from the
   * body: for `autobatch serve`, which passes the provider's model list and its errors through to its clients.
   */
  async passthrough(path: string, query?: Record<string, string>, signal?: AbortSignal): Promise<{ status: number; headers: Headers; body: string }> {
    const spec: RequestSpec = { method: "GET", path, query, signal };
    // Checked on the resolved URL too, so no `..` or encoded form of it can reach another route on this key.
    const models = `${this.#basePath}/models`;
    const resolved = path === "/models" || path.startsWith("/models/") ? this.url(spec).pathname : undefined;
    if (resolved !== models && !resolved?.startsWith(`${models}/`)) throw new TypeError(`not a path below /models: ${path}`);
    const res = await this.#send(spec, true);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_PASSTHROUGH_BODY) {
          res.body.destroy();
          throw new APIError(undefined, undefined, `GET ${path}: the provider's answer is larger than ${MAX_PASSTHROUGH_BODY} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw err instanceof APIError ? err : this.#connectionError(spec, err);
    }
    return { status: res.statusCode, headers: toHeaders(res.headers), body: this.redact(Buffer.concat(chunks, size).toString("utf8")) };
  }

  /** `anyStatus` hands non-2xx responses back instead of throwing them as APIError. */
  async #send(spec: RequestSpec, anyStatus = false): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {
      ...this.#o.defaultHeaders,
      authorization: `Bearer ${this.#o.apiKey}`,
      accept: "application/json",
    };
    if (this.#o.organization) headers["openai-organization"] = this.#o.organization;
    if (this.#o.project) headers["openai-project"] = this.#o.project;
    let body: string | Readable | undefined;
    if (spec.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.json);
    } else if (spec.upload) {
      const form = multipart(spec.upload);
      headers["content-type"] = form.contentType;
      headers["content-length"] = String(form.length);
      // A fresh stream per attempt over the same Buffers, so a retry sends the same file again.
      body = Readable.from(form.body, { objectMode: false });
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.url(spec), {
        method: spec.method,
        headers,
        body,
        signal: spec.signal,
        dispatcher: this.#dispatcher,
        headersTimeout: this.#o.requestTimeoutMs,
        bodyTimeout: this.#o.requestTimeoutMs,
      });
    } catch (err) {
      throw this.#connectionError(spec, err);
    }
    if (anyStatus || (res.statusCode >= 200 && res.statusCode < 300)) return res;
    const text = await res.body.text().catch(() => "");
    throw this.#errorFromResponse(res.statusCode, toHeaders(res.headers), text, `${spec.method} ${spec.path}`);
  }

  /** Builds the request URL from baseURL and a relative path; anything else is a programming error. */
  url(spec: Pick<RequestSpec, "path" | "query">): URL {
    if (!spec.path.startsWith("/") || spec.path.startsWith("//")) throw new TypeError(`not a relative path: ${spec.path}`);
    const url = new URL(this.#basePath + spec.path, this.#origin);
    if (url.origin !== this.#origin) throw new TypeError(`refusing to send credentials to ${url.origin}`);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, String(v));
    return url;
  }

  #connectionError(spec: RequestSpec, err: unknown): AutoBatchError {
    if (spec.signal?.aborted) return new AutoBatchError(`${spec.method} ${spec.path}: aborted`, { cause: spec.signal.reason });
    const code = (err as { code?: string }).code ?? "";
    const msg = this.redact(`${spec.method} ${spec.path}: ${(err as Error).message ?? String(err)}${code ? ` (${code})` : ""}`);
    return TIMEOUT_CODES.has(code) ? new APIConnectionTimeoutError(msg) : new APIConnectionError(msg);
  }

  /** Maps any provider error body to an APIError subclass with the provider's own message. */
  #errorFromResponse(status: number, headers: Headers, text: string, what: string): APIError {
    const { error, message } = parseErrorBody(text);
    const redacted = error ? { ...error, message: this.quote(error.message ?? "") } : undefined;
    return APIError.generate(status, redacted, `${what}: ${this.quote(message ?? text) || "(empty body)"}`, headers);
  }

  /** Runs `attempt` until it succeeds, fails for good, runs out of attempts or deadline, or `spec.signal` aborts. */
  async withRetry<T>(spec: RequestSpec, attempt: () => Promise<T>): Promise<T> {
    const deadline = this.#clock.Date.now() + this.#o.retryDeadlineMs;
    for (let retry = 0; ; retry++) {
      try {
        return await attempt();
      } catch (err) {
        const delay = retryDelay(err, retry, this.#clock.Date.now());
        if (delay === undefined || retry >= this.#o.maxRetries || spec.signal?.aborted) throw err;
        if (this.#clock.Date.now() + delay > deadline) throw err;
        await sleep(this.#clock, delay, spec.signal).catch(() => {
          throw err;
        });
      }
    }
  }

  /** Provider text as errors may quote it: the key redacted first (so no cut can leave part of it), then truncated. */
  quote(text: string): string {
    const safe = this.redact(text);
    return safe.length > MAX_QUOTED_BODY ? `${safe.slice(0, MAX_QUOTED_BODY)}… (${safe.length} chars)` : safe;
  }

  /** The key never appears in errors or events, whatever a server echoes back. */
  redact(text: string): string {
    return this.#o.apiKey.length >= 4 ? text.split(this.#o.apiKey).join("[redacted]") : text;
  }

  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close().catch(() => undefined);
  }
}

/**
 * Frames an upload as multipart/form-data around the file's own Buffers. undici's FormData would first copy the whole
 * file into a Blob and then stream it back out through web streams; for a 100 MB batch file that was measurable.
 */
function multipart(upload: FileUpload): { body: Buffer[]; length: number; contentType: string } {
  const boundary = `autobatch-${randomBytes(16).toString("hex")}`;
  let head = "";
  for (const [name, value] of Object.entries(upload.fields)) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"\r\n\r\n${value}\r\n`;
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${escapeName(upload.filename)}"\r\nContent-Type: ${upload.contentType}\r\n\r\n`;
  const first = Buffer.from(head);
  const last = Buffer.from(`\r\n--${boundary}--\r\n`);
  const body = [first, ...upload.parts, last];
  return { body, length: body.reduce((n, b) => n + b.length, 0), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** As the HTML spec encodes names in multipart headers: a quote or line break cannot end the header early. */
function escapeName(name: string): string {
  return name.replace(/\r\n|\r|\n/g, "%0D%0A").replace(/"/g, "%22");
}

function toHeaders(raw: Dispatcher.ResponseData["headers"]): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v)) for (const item of v) h.append(k, item);
    else if (v !== undefined) h.set(k, v);
  }
  return h;
}

/** `{"error":{...}}` (OpenAI), `{"error":"code","message":"..."}` (Doubleword 429/503), or plain text (Doubleword). */
export function parseErrorBody(text: string): { error?: ProviderError; message?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { message: text.trim() || undefined };
  }
  return errorFromBody(parsed) ?? { message: typeof parsed === "string" ? parsed : text };
}

/** The provider's error in an already-parsed body, in whichever of the shapes above; undefined if none. */
export function errorFromBody(body: unknown): { error: ProviderError } | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const p = body as { error?: unknown; message?: unknown };
  if (typeof p.error === "object" && p.error !== null) {
    const e = p.error as ProviderError;
    return { error: { ...e, message: typeof e.message === "string" ? e.message : JSON.stringify(e) } };
  }
  if (typeof p.error === "string") {
    return { error: { message: typeof p.message === "string" ? p.message : p.error, code: p.error, type: p.error, param: null } };
  }
  if (typeof p.message === "string") return { error: { message: p.message } };
  return undefined;
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

