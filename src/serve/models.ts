// GET /v1/models[/id], passed through to the provider with the proxy's key: many clients probe it before anything
// else. The body is read whole (model lists are small) so the key can be redacted from whatever the provider echoes.
import { Agent, request, type Dispatcher } from "undici";
import type { ResolvedOptions } from "../options.js";
import { HttpError } from "./errors.js";

const MAX_MODELS_BODY = 10_000_000;

export interface UpstreamReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export class ModelsPassthrough {
  readonly #o: ResolvedOptions;
  readonly #dispatcher: Dispatcher;
  readonly #owns: boolean;

  constructor(options: ResolvedOptions) {
    this.#o = options;
    this.#owns = !options.dispatcher;
    this.#dispatcher = options.dispatcher ?? new Agent({ keepAliveTimeout: 4_000 });
  }

  /** `path` is below the base URL (`/models` or `/models/<id>`); `search` is the client's query string. */
  async get(path: string, search: string, signal: AbortSignal): Promise<UpstreamReply> {
    const base = new URL(this.#o.baseURL);
    const url = new URL(base.pathname.replace(/\/+$/, "") + path + search, base.origin);
    const headers: Record<string, string> = { ...this.#o.defaultHeaders, authorization: `Bearer ${this.#o.apiKey}`, accept: "application/json" };
    if (this.#o.organization) headers["openai-organization"] = this.#o.organization;
    if (this.#o.project) headers["openai-project"] = this.#o.project;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: "GET",
        headers,
        signal,
        dispatcher: this.#dispatcher,
        headersTimeout: this.#o.requestTimeoutMs,
        bodyTimeout: this.#o.requestTimeoutMs,
      });
    } catch (err) {
      throw new HttpError(502, { message: `Could not reach the provider for GET ${path}: ${this.redact((err as Error).message)}`, code: "upstream_connection_error" });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_MODELS_BODY) {
        res.body.destroy();
        throw new HttpError(502, { message: `The provider's answer to GET ${path} is larger than ${MAX_MODELS_BODY} bytes.`, code: "upstream_too_large" });
      }
      chunks.push(chunk);
    }
    const out: Record<string, string> = { "content-type": String(res.headers["content-type"] ?? "application/json") };
    const requestId = res.headers["x-request-id"];
    if (typeof requestId === "string") out["x-request-id"] = requestId;
    return { status: res.statusCode, headers: out, body: Buffer.from(this.redact(Buffer.concat(chunks, size).toString("utf8"))) };
  }

  redact(text: string): string {
    return this.#o.apiKey.length >= 4 ? text.split(this.#o.apiKey).join("[redacted]") : text;
  }

  async close(): Promise<void> {
    if (this.#owns) await this.#dispatcher.close().catch(() => undefined);
  }
}
