// The cap on concurrent Batch API work, applied per request attempt: each attempt holds one of `maxConcurrency`
// slots (the shared p-queue) for as long as it is on the wire, a streamed body until it is read or dropped. A retry
// waiting out its back-off or Retry-After holds none, so polls told to wait cannot block an upload.
import { finished } from "node:stream/promises";
import type PQueue from "p-queue";
import type { z } from "zod";
import type { RequestSpec, StreamResponse, Transport } from "../internal/transport.js";

/** What the core asks of the transport. */
export type BatchHttp = Pick<
  Transport,
  "json" | "jsonOnce" | "stream" | "withRetry" | "quote" | "connectionError" | "maxResultLineBytes"
>;

export class SlottedTransport implements BatchHttp {
  readonly #transport: Transport;
  readonly #queue: PQueue;

  constructor(transport: Transport, queue: PQueue) {
    this.#transport = transport;
    this.#queue = queue;
  }

  async json<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    return this.withRetry(spec, () => this.jsonOnce(spec, schema));
  }

  async jsonOnce<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.infer<S>> {
    return this.#queue.add(() => this.#transport.jsonOnce(spec, schema), { priority: priority(spec) });
  }

  async stream(spec: RequestSpec): Promise<StreamResponse> {
    return this.withRetry(spec, () => this.#streamOnce(spec));
  }

  /** Resolves at the headers; the slot is given back once the body has ended, failed or been destroyed. */
  #streamOnce(spec: RequestSpec): Promise<StreamResponse> {
    return new Promise((resolve, reject) => {
      this.#queue
        .add(
          async () => {
            const res = await this.#transport.send(spec);
            resolve(res);
            await finished(res.body).catch(() => undefined);
          },
          { priority: priority(spec) },
        )
        .catch(reject);
    });
  }

  withRetry<T>(spec: RequestSpec, attempt: () => Promise<T>): Promise<T> {
    return this.#transport.withRetry(spec, attempt);
  }

  get maxResultLineBytes(): number {
    return this.#transport.maxResultLineBytes;
  }

  quote(text: string): string {
    return this.#transport.quote(text);
  }

  connectionError(spec: RequestSpec, err: unknown) {
    return this.#transport.connectionError(spec, err);
  }
}

/** Uploads, creates and cancels go first: they start (or stop) work that polls only watch. */
function priority(spec: RequestSpec): number {
  return spec.method === "GET" ? 0 : 1;
}
