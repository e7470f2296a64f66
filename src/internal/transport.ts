// The one door to the provider: undici requests against `baseURL`, with the key, the retry policy (retry.ts) and
// the mapping of error bodies (error-body.ts) to APIError applied to every Batch API call.
import { Agent, type Dispatcher } from "undici";
import { Readable } from "node:stream";
import type { z } from "zod";
import type { Clock } from "./clock.js";
import { parseErrorBody } from "./error-body.js";
import { multipart, type FileUpload } from "./multipart.js";
import { withRetry } from "./retry.js";
import { APIConnectionError, APIConnectionTimeoutError, APIError, AutoBatchError } from "../errors.js";
import type { DispatcherLike, ResolvedOptions } from "../options.js";

const TIMEOUT_CODES = new Set([
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "ETIMEDOUT",
]);
/** Error messages quote at most this much of a provider's body. */
const MAX_QUOTED_BODY = 1_000;

export type { FileUpload };

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
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      // A 2xx cut after its headers is as ambiguous as a reset: the operation may have happened upstream.
      throw this.connectionError(spec, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new APIError(
        res.statusCode,
        undefined,
        `${spec.method} ${spec.path}: response is not JSON: ${this.quote(text)}`,
      );
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      throw new APIError(
        res.statusCode,
        undefined,
        `${spec.method} ${spec.path}: unexpected response shape: ${checked.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`,
      );
    }
    return checked.data;
  }

  /** A streamed 2xx response (the caller must consume or destroy `body`); only reaching the headers is retried. */
  async stream(spec: RequestSpec): Promise<StreamResponse> {
    return this.withRetry(spec, async () => {
      const res = await this.send(spec);
      return { status: res.statusCode, headers: toHeaders(res.headers), body: res.body };
    });
  }

  /** `anyStatus` hands non-2xx responses back instead of throwing them as APIError. */
  async send(spec: RequestSpec, anyStatus = false): Promise<Dispatcher.ResponseData> {
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
      const url = this.url(spec);
      // The dispatcher's own request() (not undici's top-level one), so a user's undici 8 Agent works as well as 7's.
      res = (await this.#dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: spec.method,
        headers,
        body,
        signal: spec.signal,
        headersTimeout: this.#o.requestTimeoutMs,
        bodyTimeout: this.#o.requestTimeoutMs,
      })) as Dispatcher.ResponseData;
    } catch (err) {
      throw this.connectionError(spec, err);
    }
    if (anyStatus || (res.statusCode >= 200 && res.statusCode < 300)) return res;
    const text = await res.body.text().catch(() => "");
    throw this.#errorFromResponse(res.statusCode, toHeaders(res.headers), text, `${spec.method} ${spec.path}`);
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
    return this.#o.apiKey.length >= 4 ? text.split(this.#o.apiKey).join("[redacted]") : text;
  }

  async close(): Promise<void> {
    await this.#ownAgent?.close().catch(() => undefined);
  }
}

export function toHeaders(raw: Dispatcher.ResponseData["headers"]): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v)) for (const item of v) h.append(k, item);
    else if (v !== undefined) h.set(k, v);
  }
  return h;
}
