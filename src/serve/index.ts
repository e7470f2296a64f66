// `serve(options)`: an OpenAI-compatible HTTP proxy that batches what it receives, on the same core as AutoBatcher.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RawResult } from "../core/call.js";
import { Engine, type EngineStats } from "../core/engine.js";
import { isRetryableStatus } from "../internal/retry.js";
import { z } from "zod";
import { nonNegative, optionsSchema, parseOptions, positiveInt } from "../options.js";
import { toHttpError } from "./errors.js";
import { IdempotencyCache } from "./idempotency.js";
import { safeURL } from "../internal/safe-url.js";
import { createLogger, logEngineEvents, type LogSink } from "./log.js";
import { createHandler, type HandlerContext } from "./server.js";

export type { LogEntry, LogLevel, LogSink } from "./log.js";

export const SERVE_DEFAULTS = {
  host: "127.0.0.1",
  port: 8080,
  maxBodyBytes: 10_000_000,
  shutdownTimeoutMs: 1_800_000,
  idempotencyTtlMs: 600_000,
  idempotencyMaxKeys: 10_000,
} as const;

const PORT_RANGE = "port must be a whole number from 0 to 65535";

/** Every AutoBatcher option plus the proxy's own; one parse checks them all and fills the proxy's defaults. */
const serveOptionsSchema = z.strictObject({
  ...optionsSchema.shape,
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port: z
    .number({ error: PORT_RANGE })
    .int(PORT_RANGE)
    .min(0, PORT_RANGE)
    .max(65535, PORT_RANGE)
    .default(SERVE_DEFAULTS.port),
  /** Interface to bind. Default "127.0.0.1" (loopback only). */
  host: z.string({ error: "host must be a string" }).min(1, "host must not be empty").default(SERVE_DEFAULTS.host),
  /** When set, clients must send `Authorization: Bearer <authToken>` (GET /health excepted). */
  authToken: z.string({ error: "authToken must be a string" }).min(1, "authToken must not be empty").optional(),
  /** Largest accepted request body, in bytes (413 above). Default 10,000,000. */
  maxBodyBytes: positiveInt("maxBodyBytes").default(SERVE_DEFAULTS.maxBodyBytes),
  /** Milliseconds `close()` waits for running calls before cancelling the rest. Default 1,800,000 (30 min). */
  shutdownTimeoutMs: nonNegative("shutdownTimeoutMs").default(SERVE_DEFAULTS.shutdownTimeoutMs),
  /**
   * Milliseconds an `Idempotency-Key` is remembered after its call settles, and how long a keyed call whose
   * clients all disconnected waits for a retry before it is released. Default 600,000 (10 min).
   */
  idempotencyTtlMs: nonNegative("idempotencyTtlMs").default(SERVE_DEFAULTS.idempotencyTtlMs),
  /** Most settled keys remembered at once (oldest forgotten first). Default 10,000. */
  idempotencyMaxKeys: positiveInt("idempotencyMaxKeys").default(SERVE_DEFAULTS.idempotencyMaxKeys),
  /**
   * Durable state (see AutoBatcher's `store`); `false` or absent: memory only. With a store, `Idempotency-Key` answers
   * and keyed calls in flight survive a restart, and on close past `shutdownTimeoutMs` running batches are left for
   * the next start instead of cancelled. Default: none (`autobatch serve` defaults to a file in the state directory).
   */
  store: z
    .union([z.string().min(1, "store must not be empty"), z.literal(false)], {
      error: "store must be a file path, a postgres:// URL or false",
    })
    .optional(),
  /** As AutoBatcher's, but "keys" by default: a proxy replays only requests that carry an `Idempotency-Key`. */
  requestIdentity: z.enum(["fingerprint", "keys"]).default("keys"),
  /** Receives each structured log entry; `false` silences the proxy. Default: JSON lines on stdout. */
  log: z.custom<LogSink>((v) => v === false || typeof v === "function", "log must be a function or false").optional(),
});

export type ServeOptions = z.input<typeof serveOptionsSchema>;

export interface ServeCloseOptions {
  /** Milliseconds to wait for running calls before cancelling them upstream. @default `shutdownTimeoutMs` */
  timeoutMs?: number;
}

export interface ServeHandle {
  /** The proxy's origin, e.g. "http://127.0.0.1:8080". */
  readonly url: string;
  /** What clients use as their base URL: `${url}/v1`. */
  readonly baseURL: string;
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

export async function serve(options: ServeOptions = {}): Promise<ServeHandle> {
  const {
    port,
    host,
    authToken,
    maxBodyBytes,
    shutdownTimeoutMs,
    idempotencyTtlMs,
    idempotencyMaxKeys,
    log: sink,
    store,
    ...engineOptions
  } = parseOptions(serveOptionsSchema, options, "Invalid serve options");
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
  const server = http.createServer(createHandler(ctx));
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
  const url = `http://${hostPart}:${address.port}`;
  const o = engine.options;
  log("info", "serve.listening", {
    url,
    baseURL: `${url}/v1`,
    upstream: safeURL(o.baseURL),
    auth: authToken !== undefined,
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
    url,
    baseURL: `${url}/v1`,
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
