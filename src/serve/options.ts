// serve()'s options: the documented interface, the schema that checks it, and the proxy's defaults, resolved here only.
import { z } from "zod";
import { type AutoBatcherOptions, InvalidOptionsError, type RequestIdentity } from "../options.js";
import { nonNegative, optionsSchema, parseOptions, positiveInt, requestIdentitySchema } from "../options-schema.js";
import { isLoopbackHost } from "../server-kit/loopback.js";
import type { LogSink } from "./log.js";

/** The defaults of ServeOptions' own fields; the AutoBatcher ones come from `DEFAULTS`. */
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
  requestIdentity: "adopt",
} as const;

/** Options of `serve()`: every AutoBatcher option (they shape the batches) plus the proxy's own. */
export interface ServeOptions extends Omit<AutoBatcherOptions, "store"> {
  /**
   * Durable state (see AutoBatcher's `store`); `false` or absent: memory only. With a store, `Idempotency-Key` answers
   * and keyed calls in flight survive a restart, unkeyed requests retried after a crash adopt their lines (see
   * `requestIdentity`), and on close past `shutdownTimeoutMs` running batches are left for the next start instead of
   * cancelled. (`autobatch serve` defaults to a file in the user's state directory.)
   * @default undefined (memory only)
   */
  store?: string | false;
  /**
   * Port to listen on, 0 to 65535; 0 picks a free one.
   * @default 8080
   */
  port?: number;
  /**
   * Interface to bind; the default accepts loopback connections only.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * When set, clients must send `Authorization: Bearer <authToken>` (GET /health excepted).
   * @default undefined (no check)
   */
  authToken?: string;
  /**
   * Lets serve listen on a host other than loopback without `authToken` (anyone who reaches the port spends the
   * provider key). Without it, that combination is refused at start.
   * @default false
   */
  allowUnauthenticated?: boolean;
  /**
   * Requests waiting for their answer (batched calls and passthroughs) at once; beyond it, 503 with `Retry-After` and
   * the connection closed, while /health keeps answering. Keep it below the process's open-file limit (`ulimit -n`):
   * each waiting request holds a connection.
   * @default 4000
   */
  maxWaitingRequests?: number;
  /**
   * Milliseconds a client may take to send its request headers (408 and closed after).
   * @default 10000
   */
  clientHeadersTimeoutMs?: number;
  /**
   * Milliseconds a client may take to send its whole request, headers and body (408 and closed after); waiting for the
   * answer is not counted. At least `clientHeadersTimeoutMs`.
   * @default 60000
   */
  clientRequestTimeoutMs?: number;
  /**
   * Largest accepted request body, in bytes (413 above).
   * @default 10000000
   */
  maxBodyBytes?: number;
  /**
   * Milliseconds `close()` waits for running calls before cancelling the rest upstream (30 min).
   * @default 1800000
   */
  shutdownTimeoutMs?: number;
  /**
   * Milliseconds an `Idempotency-Key` is remembered after its call settles, and how long a keyed call whose
   * clients all disconnected waits for a retry before it is released (10 min).
   * @default 600000
   */
  idempotencyTtlMs?: number;
  /**
   * Most settled idempotency keys remembered at once; the oldest are forgotten first.
   * @default 10000
   */
  idempotencyMaxKeys?: number;
  /**
   * As AutoBatcher's, but `"adopt"` by default: with a store, a proxy replays requests that carry an
   * `Idempotency-Key`, and a request without one adopts an identical line whose client was lost when its process
   * died (a retry after a crash is answered from the line already paid for); identical requests are never otherwise
   * shared.
   * @default "adopt"
   */
  requestIdentity?: RequestIdentity;
  /**
   * Receives each structured log entry; `false` silences the proxy.
   * @default JSON lines on stdout
   */
  log?: LogSink;
}

const PORT_RANGE = "port must be a whole number from 0 to 65535";

/** Every AutoBatcher option plus the proxy's own; one parse checks them all and fills the proxy's defaults. */
export const serveOptionsSchema = z.strictObject({
  ...optionsSchema.shape,
  port: z
    .number({ error: PORT_RANGE })
    .int(PORT_RANGE)
    .min(0, PORT_RANGE)
    .max(65535, PORT_RANGE)
    .default(SERVE_DEFAULTS.port),
  host: z.string({ error: "host must be a string" }).min(1, "host must not be empty").default(SERVE_DEFAULTS.host),
  authToken: z.string({ error: "authToken must be a string" }).min(1, "authToken must not be empty").optional(),
  allowUnauthenticated: z.boolean({ error: "allowUnauthenticated must be a boolean" }).default(false),
  maxWaitingRequests: positiveInt("maxWaitingRequests").default(SERVE_DEFAULTS.maxWaitingRequests),
  clientHeadersTimeoutMs: positiveInt("clientHeadersTimeoutMs").default(SERVE_DEFAULTS.clientHeadersTimeoutMs),
  clientRequestTimeoutMs: positiveInt("clientRequestTimeoutMs").default(SERVE_DEFAULTS.clientRequestTimeoutMs),
  maxBodyBytes: positiveInt("maxBodyBytes").default(SERVE_DEFAULTS.maxBodyBytes),
  shutdownTimeoutMs: nonNegative("shutdownTimeoutMs").default(SERVE_DEFAULTS.shutdownTimeoutMs),
  idempotencyTtlMs: nonNegative("idempotencyTtlMs").default(SERVE_DEFAULTS.idempotencyTtlMs),
  idempotencyMaxKeys: positiveInt("idempotencyMaxKeys").default(SERVE_DEFAULTS.idempotencyMaxKeys),
  store: z
    .union([z.string().min(1, "store must not be empty"), z.literal(false)], {
      error: "store must be a file path, a postgres:// URL or false",
    })
    .optional(),
  requestIdentity: requestIdentitySchema.default(SERVE_DEFAULTS.requestIdentity),
  log: z.custom<LogSink>((v) => v === false || typeof v === "function", "log must be a function or false").optional(),
});

const TITLE = "Invalid serve options";

/** The options checked, the proxy's defaults filled in; the AutoBatcher ones are resolved by the engine. */
export function resolveServeOptions(options: ServeOptions) {
  const o = parseOptions(serveOptionsSchema, options, TITLE);
  if (!isLoopbackHost(o.host) && o.authToken === undefined && !o.allowUnauthenticated) {
    throw new InvalidOptionsError(
      `${TITLE}:\n  host: ${o.host} is reachable from other machines and no authToken is set: anyone who reaches it spends your provider key. Set authToken, bind a loopback host, or pass allowUnauthenticated: true`,
      [
        {
          path: ["host"],
          message: `${o.host} is not loopback and no authToken is set (set authToken, or allowUnauthenticated)`,
        },
      ],
    );
  }
  if (o.clientRequestTimeoutMs < o.clientHeadersTimeoutMs) {
    throw new InvalidOptionsError(`${TITLE}:\n  clientRequestTimeoutMs: must be >= clientHeadersTimeoutMs`, [
      { path: ["clientRequestTimeoutMs"], message: "must be >= clientHeadersTimeoutMs" },
    ]);
  }
  return o;
}
