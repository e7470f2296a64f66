// createLongWaitFetch(): a `fetch` for clients of `autobatch serve`, whose answers come when a batch is done (hours).
// Node's own fetch gives up after 300 s without response headers or body bytes, and cannot take a dispatcher from
// another undici major (undici 8's Agent fails every request with `invalid onRequestStart method`). This one is
// undici's fetch with an Agent from the same package, so it works on every supported Node whatever undici the app has.
import { Agent, fetch as undiciFetch } from "undici";
import type { FetchLike } from "./fetch.js";

export interface LongWaitFetchOptions {
  /** Milliseconds without response headers, or without body bytes, before a request fails. Default 0: never (the client's own `timeout` decides). */
  idleTimeoutMs?: number;
}

export interface LongWaitFetch extends FetchLike {
  /** Closes the connections it keeps. */
  close(): Promise<void>;
}

export function createLongWaitFetch(options: LongWaitFetchOptions = {}): LongWaitFetch {
  const idle = options.idleTimeoutMs ?? 0;
  if (!Number.isInteger(idle) || idle < 0)
    throw new TypeError(`idleTimeoutMs must be a whole number of milliseconds >= 0 (got ${idle})`);
  const agent = new Agent({ headersTimeout: idle, bodyTimeout: idle });
  // undici's Request/Response types are its own; at run time they are what every SDK reads.
  const longWaitFetch = (input: string | URL | Request, init?: RequestInit) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher: agent,
    }) as unknown as Promise<Response>;
  return Object.assign(longWaitFetch, { close: () => agent.close() });
}
