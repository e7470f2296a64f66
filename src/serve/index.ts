// `serve(options)`: an OpenAI-compatible HTTP proxy that batches what it receives, on the same core as AutoBatcher.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RawResult } from "../core/call.js";
import { Engine, type EngineStats } from "../core/engine.js";
import { isRetryableStatus } from "../internal/retry.js";
import { z } from "zod";
import { InvalidOptionsError, nonNegative, optionsSchema, parseOptions, positiveInt } from "../options.js";
import { isLoopbackHost } from "../server-kit/loopback.js";
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
  maxWaitingRequests: 4_000,
  clientHeadersTimeoutMs: 10_000,
  clientRequestTimeoutMs: 60_000,
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
  /**
   * Lets serve listen on a host other than loopback without `authToken` (anyone who reaches the port spends the
   * provider key). Without it, that combination is refused at start. Default false.
   */
  allowUnauthenticated: z.boolean({ error: "allowUnauthenticated must be a boolean" }).default(false),
  /**
   * Requests waiting for their answer (batched calls and passthroughs) at once; beyond it, 503 with `Retry-After`
   * and the connection closed, while /health keeps answering. Keep it below the process's open-file limit
   * (`ulimit -n`): each waiting request holds a connection. Default 4,000.
   */
  maxWaitingRequests: positiveInt("maxWaitingRequests").default(SERVE_DEFAULTS.maxWaitingRequests),
  /** Milliseconds a client may take to send its request headers (408 and closed after). Default 10,000. */
  clientHeadersTimeoutMs: positiveInt("clientHeadersTimeoutMs").default(SERVE_DEFAULTS.clientHeadersTimeoutMs),
  /**
   * Milliseconds a client may take to send its whole request, headers and body (408 and closed after); waiting for
   * the answer is not counted. At least `clientHeadersTimeoutMs`. Default 60,000.
   */
  clientRequestTimeoutMs: positiveInt("clientRequestTimeoutMs").default(SERVE_DEFAULTS.clientRequestTimeoutMs),
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
    allowUnauthenticated,
    maxWaitingRequests,
    clientHeadersTimeoutMs,
    clientRequestTimeoutMs,
    log: sink,
    ...engineOptions
  } = parseOptions(serveOptionsSchema, options, "Invalid serve options");
  const exposed = !isLoopbackHost(host) && authToken === undefined;
  if (exposed && !allowUnauthenticated) {
    throw new InvalidOptionsError(
      `Invalid serve options:\n  host: ${host} is reachable from other machines and no authToken is set: anyone who reaches it spends your provider key. Set authToken, bind a loopback host, or pass allowUnauthenticated: true`,
      [
        {
          path: ["host"],
          message: `${host} is not loopback and no authToken is set (set authToken, or allowUnauthenticated)`,
        },
      ],
    );
  }
  if (clientRequestTimeoutMs < clientHeadersTimeoutMs) {
    throw new InvalidOptionsError(
      "Invalid serve options:\n  clientRequestTimeoutMs: must be >= clientHeadersTimeoutMs",
      [{ path: ["clientRequestTimeoutMs"], message: "must be >= clientHeadersTimeoutMs" }],
    );
  }
  const log = createLogger(sink);
  const engine = new Engine(engineOptions);
  logEngineEvents(log, engine.events);
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
  const url = `http://${hostPart}:${address.port}`;
  const o = engine.options;
  log(exposed ? "warn" : "info", "serve.listening", {
    url,
    baseURL: `${url}/v1`,
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
  });

  let closing: Promise<void> | undefined;
  const close = (closeOptions: ServeCloseOptions = {}) =>
    (closing ??= (async () => {
      ctx.closing = true;
      const timeoutMs = closeOptions.timeoutMs ?? shutdownTimeoutMs;
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      log("info", "serve.closing", { pending: engine.stats.pending, timeoutMs });
      if (!(await within(engine.close(), timeoutMs))) {
        log("warn", "serve.shutdown_timeout", { pending: engine.stats.pending, timeoutMs });
        await engine.close({ cancel: true });
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
