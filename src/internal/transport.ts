// The one door to the provider: undici requests against `baseURL`, with the key, the retry policy (retry.ts) and
// the mapping of error bodies (error-body.ts) to APIError applied to every Batch API call. Whatever the provider
// sends is bounded here: each attempt has a total deadline (a trickling body cannot outlast it), JSON and error
// bodies a size cap, and every byte passes the key's redactor (redact.ts) before anyone reads it.
import { Agent, type Dispatcher } from "undici";
import { Readable } from "node:stream";
import type { z } from "zod";
import type { Clock } from "./clock.js";
import { parseErrorBody } from "./error-body.js";
import { multipart, type FileUpload } from "./multipart.js";
import { Redactor } from "./redact.js";
import { withRetry } from "./retry.js";
import { APIConnectionError, APIConnectionTimeoutError, APIError, AutoBatchError } from "../errors.js";
import type { DispatcherLike } from "../options.js";
import type { ResolvedOptions } from "../options-resolve.js";

const TIMEOUT_CODES = new Set([
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "ETIMEDOUT",
]);
/** Error messages quote at most this much of a provider's body. */
const MAX_QUOTED_BODY = 1_000;
/** Bytes of an error body read; the rest is dropped (only the start is ever quoted or parsed for the message). */
const MAX_ERROR_BODY = 65_536;

export type { FileUpload };

export interface RequestSpec {
  method: "GET" | "POST" | "DELETE";
  /** Path below baseURL, starting with "/" (never an absolute URL: the key goes to baseURL's origin only). */
  path: string;
  query?: Record<string, string | number>;
  json?: unknown;
  upload?: FileUpload;
  /** Gives up (retries included) when aborted. */
  signal?: AbortSignal;
}

export interface StreamResponse {
  status: number;
  headers: Headers;
  body: Readable;
}

export class Transport {
  readonly #o: ResolvedOptions;
  readonly #clock: Clock;
  readonly #dispatcher: DispatcherLike;
  readonly #ownAgent: Agent | undefined;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #redactor: Redactor;

  constructor(options: ResolvedOptions, clock: Clock) {
    this.#o = options;
    this.#clock = clock;
    this.#ownAgent = options.dispatcher
      ? undefined
      : new Agent({ keepAliveTimeout: 4_000, connections: options.maxConcurrency * 2 });
    this.#dispatcher = options.dispatcher ?? (this.#ownAgent as Agent);
    const base = new URL(options.baseURL);
    this.#origin = base.origin;
    this.#basePath = base.pathname.replace(/\/+$/, "");
    this.#redactor = new Redactor(options.apiKey);
  }

  /** Result lines longer than this are skipped and fail their own call (see LineSplitter). */
  get maxResultLineBytes(): number {
    return this.#o.maxResultLineBytes;
  }

  /** The path of baseURL (e.g. `/v1`), without a trailing slash. */
  get basePath(): string {
    return this.#basePath;
  }

  /** A JSON request, retried per the policy, its 2xx body checked against `schema`. */
  async json<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    return this.withRetry(spec, () => this.jsonOnce(spec, schema));
  }

  /** One attempt of `json`, for callers that wrap their own retry logic around it. */
  async jsonOnce<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    const res = await this.send(spec);
    const text = await this.text(spec, res);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new APIError(
        res.status,
        undefined,
        `${spec.method} ${spec.path}: response is not JSON: ${this.quote(text)}`,
      );
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      throw new APIError(
        res.status,
        undefined,
        `${spec.method} ${spec.path}: unexpected response shape: ${checked.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`,
      );
    }
    return checked.data;
  }

  /**
   * A whole body as text, at most `maxResponseBytes`. Larger fails this request with the answer's own status, so a
   * 2xx is not retried (it would only be downloaded again); a body cut after its headers is as ambiguous as a reset.
   */
  async text(spec: RequestSpec, res: StreamResponse): Promise<string> {
    const max = this.#o.maxResponseBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > max) {
          res.body.destroy();
          throw new APIError(
            res.status,
            undefined,
            `${spec.method} ${spec.path}: the provider's answer is larger than maxResponseBytes (${max} bytes)`,
            res.headers,
          );
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw err instanceof AutoBatchError ? err : this.connectionError(spec, err);
    }
    return Buffer.concat(chunks, size).toString("utf8");
  }

  /** A streamed 2xx response (the caller must consume or destroy `body`); only reaching the headers is retried. */
  async stream(spec: RequestSpec): Promise<StreamResponse> {
    return this.withRetry(spec, () => this.send(spec));
  }

  /**
   * One attempt. The body handed back is redacted and still under the attempt's deadline: reading it past
   * `requestDeadlineMs` fails it with APIConnectionTimeoutError. `anyStatus` hands non-2xx responses back instead of
   * throwing them as APIError.
   */
  async send(spec: RequestSpec, anyStatus = false): Promise<StreamResponse> {
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
    const deadline = new AbortController();
    const ms = this.#o.requestDeadlineMs;
    const timer = this.#clock.setTimeout(
      () =>
        deadline.abort(
          new APIConnectionTimeoutError(
            `${spec.method} ${spec.path}: no complete answer within requestDeadlineMs (${ms} ms)`,
          ),
        ),
      ms,
    );
    const failure = (err: unknown) =>
      deadline.signal.aborted && !spec.signal?.aborted ? deadline.signal.reason : this.connectionError(spec, err);
    let raw: Dispatcher.ResponseData;
    try {
      const url = this.url(spec);
      // The dispatcher's own request() (not undici's top-level one), so a user's undici 8 Agent works as well as 7's.
      raw = (await this.#dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: spec.method,
        headers,
        body,
        signal: spec.signal ? AbortSignal.any([spec.signal, deadline.signal]) : deadline.signal,
        headersTimeout: this.#o.requestTimeoutMs,
        bodyTimeout: this.#o.requestTimeoutMs,
      })) as Dispatcher.ResponseData;
    } catch (err) {
      this.#clock.clearTimeout(timer);
      throw failure(err);
    }
    const res: StreamResponse = {
      status: raw.statusCode,
      headers: toHeaders(raw.headers, this.#redactor),
      body: this.#guard(raw.body, deadline.signal, () => this.#clock.clearTimeout(timer), failure),
    };
    if (anyStatus || (res.status >= 200 && res.status < 300)) return res;
    const text = await readUpTo(res.body, MAX_ERROR_BODY).catch(() => "");
    throw this.#errorFromResponse(res.status, res.headers, text, `${spec.method} ${spec.path}`);
  }

  /** The provider's body as callers see it: redacted, failed when the deadline passes, released when they stop. */
  #guard(src: Readable, deadline: AbortSignal, done: () => void, failure: (err: unknown) => unknown): Readable {
    const out = this.#redactor.stream();
    // Its reader sees the error; this only keeps a failure nobody reads yet from crashing the process.
    out.on("error", () => undefined);
    const fail = (err: unknown) => out.destroy(failure(err) as Error);
    src.once("error", fail);
    deadline.addEventListener("abort", fail, { once: true });
    out.once("close", () => {
      done();
      deadline.removeEventListener("abort", fail);
      if (!src.readableEnded) src.destroy();
    });
    src.pipe(out);
    return out;
  }

  /** Builds the request URL from baseURL and a relative path; anything else is a programming error. */
  url(spec: Pick<RequestSpec, "path" | "query">): URL {
    if (!spec.path.startsWith("/") || spec.path.startsWith("//"))
      throw new TypeError(`not a relative path: ${spec.path}`);
    const url = new URL(this.#basePath + spec.path, this.#origin);
    if (url.origin !== this.#origin) throw new TypeError(`refusing to send credentials to ${url.origin}`);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, String(v));
    return url;
  }

  connectionError(spec: RequestSpec, err: unknown): AutoBatchError {
    if (spec.signal?.aborted)
      return new AutoBatchError(`${spec.method} ${spec.path}: aborted`, { cause: spec.signal.reason });
    const code = (err as { code?: string }).code ?? "";
    const msg = this.redact(
      `${spec.method} ${spec.path}: ${(err as Error).message ?? String(err)}${code ? ` (${code})` : ""}`,
    );
    return TIMEOUT_CODES.has(code) ? new APIConnectionTimeoutError(msg) : new APIConnectionError(msg);
  }

  /** Maps any provider error body to an APIError subclass with the provider's own message. */
  #errorFromResponse(status: number, headers: Headers, text: string, what: string): APIError {
    const { error, message } = parseErrorBody(text);
    const redacted = error ? { ...error, message: this.quote(error.message ?? "") } : undefined;
    return APIError.generate(status, redacted, `${what}: ${this.quote(message ?? text) || "(empty body)"}`, headers);
  }

  /** Runs `attempt` under the retry policy (see retry.ts), given up when `spec.signal` aborts. */
  withRetry<T>(spec: RequestSpec, attempt: () => Promise<T>): Promise<T> {
    return withRetry(this.#clock, this.#o, spec.signal, attempt);
  }

  /** Provider text as errors may quote it: the key redacted first (so no cut can leave part of it), then truncated. */
  quote(text: string): string {
    const safe = this.redact(text);
    return safe.length > MAX_QUOTED_BODY ? `${safe.slice(0, MAX_QUOTED_BODY)}… (${safe.length} chars)` : safe;
  }

  /** The key never appears in errors or events, whatever a server echoes back. */
  redact(text: string): string {
    return this.#redactor.text(text);
  }

  async close(): Promise<void> {
    await this.#ownAgent?.close().catch(() => undefined);
  }
}

function toHeaders(raw: Dispatcher.ResponseData["headers"], redactor: Redactor): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v)) for (const item of v) h.append(k, redactor.text(item));
    else if (v !== undefined) h.set(k, redactor.text(v));
  }
  return h;
}

/** At most `max` bytes of `body` as text; the rest is not read (the body is released). */
async function readUpTo(body: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= max) break;
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks, size).subarray(0, max).toString("utf8");
}
