// `serve(options)`: an OpenAI-compatible HTTP proxy that batches what it receives, on the same core as AutoBatcher.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RawResult } from "../core/call.js";
import { Engine } from "../core/engine.js";
import type { EngineStats } from "../core/engine-types.js";
import { isRetryableStatus } from "../internal/retry.js";
import { isLoopbackHost } from "../server-kit/loopback.js";
import { toHttpError } from "./errors.js";
import { IdempotencyCache } from "./idempotency.js";
import { safeURL } from "../internal/safe-url.js";
import { createLogger, logEngineEvents } from "./log.js";
import { createHandler, type HandlerContext } from "./server.js";
import { resolveServeOptions, type ServeOptions } from "./options.js";

export type { LogEntry, LogLevel, LogSink } from "./log.js";
export { SERVE_DEFAULTS, type ServeOptions } from "./options.js";

export interface ServeCloseOptions {
  /** Milliseconds to wait for running calls before cancelling them upstream. @default `shutdownTimeoutMs` */
  timeoutMs?: number;
}

export interface ServeHandle {
  /** What clients use as their base URL, with `/v1`: e.g. "http://127.0.0.1:8080/v1". */
  readonly baseURL: string;
  /** The proxy's origin, without `/v1` (where GET /health lives): e.g. "http://127.0.0.1:8080". */
  readonly origin: string;
  readonly host: string;
  readonly port: number;
  /** The core's counters: calls buffered, submitting, pending; batches running and created. */
  readonly stats: EngineStats;
  /**
   * Stops accepting connections, flushes what is buffered, waits for every call up to `timeoutMs`, then cancels
   * the rest upstream (their clients get 503). Idempotent: later calls return the same promise.
   */
  close(options?: ServeCloseOptions): Promise<void>;
}

/** How long answers written during shutdown get to reach their clients before connections are cut. */
const CLOSE_GRACE_MS = 1_000;

/**
 * Starts an OpenAI-compatible HTTP proxy: POST /v1/chat/completions, /v1/embeddings and /v1/responses are batched
 * upstream and each request is answered when its line's result arrives. Any language's OpenAI client can use it.
 *
 * @example
 * ```ts
 * import { serve } from "autobatch/serve";
 *
 * const proxy = await serve({ baseURL: "https://api.doubleword.ai/v1", port: 8080 });
 * // clients use proxy.baseURL ("http://127.0.0.1:8080/v1") as their base URL
 * process.once("SIGTERM", () => proxy.close());
 * ```
 */
export async function serve(options: ServeOptions = {}): Promise<ServeHandle> {
  const {
    port,
    host,
    authToken,
    maxBodyBytes,
    shutdownTimeoutMs,
    idempotencyTtlMs,
    idempotencyMaxKeys,
    allowUnauthenticated,
    maxWaitingRequests,
    clientHeadersTimeoutMs,
    clientRequestTimeoutMs,
    log: sink,
    store,
    ...engineOptions
  } = resolveServeOptions(options);
  const exposed = !isLoopbackHost(host) && authToken === undefined;
  const log = createLogger(sink);
  const engine = new Engine({ ...engineOptions, store: store || undefined });
  logEngineEvents(log, engine.events);
  let storeLocation: string | undefined;
  try {
    storeLocation = await engine.storeLocation();
  } catch (err) {
    await engine.close({ cancel: true });
    throw err;
  }
  const ctx: HandlerContext = {
    engine,
    log,
    authToken,
    maxBodyBytes,
    maxWaitingRequests,
    waiting: 0,
    idempotency: new IdempotencyCache<RawResult>({
      ttlMs: idempotencyTtlMs,
      maxKeys: idempotencyMaxKeys,
      keepFailure: (err) => {
        const e = toHttpError(err);
        return !isRetryableStatus(e.status, e.headers["x-should-retry"]);
      },
    }),
    closing: false,
    inflight: new Set(),
  };
  const server = http.createServer(
    {
      headersTimeout: clientHeadersTimeoutMs,
      requestTimeout: clientRequestTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s): a finer one keeps them near their values.
      connectionsCheckingInterval: Math.min(1_000, clientHeadersTimeoutMs),
    },
    createHandler(ctx),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await engine.close({ cancel: true });
    throw err;
  }
  const address = server.address() as AddressInfo;
  const hostPart = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const origin = `http://${hostPart}:${address.port}`;
  const o = engine.options;
  log(exposed ? "warn" : "info", "serve.listening", {
    url: origin,
    baseURL: `${origin}/v1`,
    upstream: safeURL(o.baseURL),
    auth: authToken !== undefined,
    ...(exposed && {
      warning: `UNAUTHENTICATED on ${host}: anyone who reaches this port spends the provider key (allowUnauthenticated)`,
    }),
    maxWaitingRequests,
    batchSize: o.batchSize,
    maxBatchBytes: o.maxBatchBytes,
    batchWindowMs: o.batchWindowMs,
    pollIntervalMs: o.pollIntervalMs,
    completionWindow: o.completionWindow,
    maxBodyBytes,
    shutdownTimeoutMs,
    idempotencyTtlMs,
    store: storeLocation ?? null,
  });

  let closing: Promise<void> | undefined;
  const close = (closeOptions: ServeCloseOptions = {}) =>
    (closing ??= (async () => {
      ctx.closing = true;
      const timeoutMs = closeOptions.timeoutMs ?? shutdownTimeoutMs;
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      log("info", "serve.closing", { pending: engine.stats.pending, timeoutMs });
      if (!(await within(engine.close(), timeoutMs))) {
        log("warn", "serve.shutdown_timeout", { pending: engine.stats.pending, timeoutMs, detach: !!storeLocation });
        // With a store the batches go on upstream and the next start picks them up: nothing is cancelled or re-billed.
        await engine.close(storeLocation ? { detach: true } : { cancel: true });
      }
      // Answers just settled are still being written: give them a moment, then cut every connection left.
      const answered = Promise.all(
        [...ctx.inflight].map((res) => new Promise((resolve) => res.once("close", resolve))),
      );
      await within(answered, CLOSE_GRACE_MS);
      server.closeAllConnections();
      await serverClosed;
      log("info", "serve.closed", { batchesCreated: engine.stats.batchesCreated });
    })());

  return {
    baseURL: `${origin}/v1`,
    origin,
    host: address.address,
    port: address.port,
    get stats() {
      return engine.stats;
    },
    close,
  };
}

/** Whether `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
