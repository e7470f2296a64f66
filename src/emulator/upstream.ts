// Upstream mode: each line is sent to a real-time OpenAI-compatible server.
import { Agent, request } from "undici";
import type { Outcome } from "./model.js";
import type { UpstreamOptions } from "./types.js";

export class Upstream {
  readonly #base: string;
  readonly #apiKey: string | undefined;
  readonly #agent: Agent;

  constructor(options: UpstreamOptions) {
    this.#base = options.baseURL.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#agent = new Agent({ connections: options.concurrency ?? 8 });
  }

  /** POSTs the line body to `baseURL + url minus its /v1 prefix`. */
  async execute(url: string, bodyText: string, signal: AbortSignal): Promise<Outcome> {
    const target = this.#base + url.replace(/^\/v1(?=\/)/, "");
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    try {
      const res = await request(target, { method: "POST", headers, body: bodyText, signal, dispatcher: this.#agent });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // A non-JSON success body is passed on as a string, as Doubleword does.
        }
        return { kind: "ok", status: res.statusCode, body };
      }
      return { kind: "http", status: res.statusCode, body: text };
    } catch (err) {
      return { kind: "network", message: err instanceof Error ? err.message : String(err) };
    }
  }

  close(): Promise<void> {
    return this.#agent.destroy();
  }
}
