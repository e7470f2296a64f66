// `autobatch serve`: flags and env → serve(); SIGINT/SIGTERM drain then exit, a second signal exits at once.
import { httpURL, number, parseFlags, port, UsageError } from "./args.js";
import { mkdirSync } from "node:fs";
import { constants, homedir } from "node:os";
import { join } from "node:path";
import { isPostgresURL } from "../store/open.js";
import { DEFAULTS, InvalidOptionsError } from "../options.js";
import { type ServeHandle, type ServeOptions, SERVE_DEFAULTS, serve } from "../serve/index.js";
import { createLogger } from "../serve/log.js";
import { StoreError } from "../store/errors.js";

const USAGE = `usage: autobatch serve [options]

Runs an OpenAI-compatible HTTP proxy that sends every call it receives through a Batch API.
Clients use http://HOST:PORT/v1 as their base URL.

upstream:
  --base-url URL              provider base URL incl. /v1 (env OPENAI_BASE_URL, default ${DEFAULTS.baseURL})
  --api-key KEY               provider key (required; prefer env OPENAI_API_KEY: flag values show in ps)
  --completion-window W       batch completion window, e.g. 24h or 1h (default ${DEFAULTS.completionWindow})
  --metadata KEY=VALUE        metadata on every batch; repeatable

batching:
  --batch-size N              calls per batch file before a flush (default ${DEFAULTS.batchSize})
  --max-batch-bytes N         bytes per batch file before a flush (default ${DEFAULTS.maxBatchBytes})
  --batch-window-ms MS        time from a buffer's first call to its flush, fractions allowed (default ${DEFAULTS.batchWindowMs})
  --poll-interval-ms MS       time between progress reads of running batches (default ${DEFAULTS.pollIntervalMs})

server:
  --host H                    interface to bind (default ${SERVE_DEFAULTS.host})
  --port N                    port; 0 picks a free one (default ${SERVE_DEFAULTS.port})
  --auth-token T              require "Authorization: Bearer T" from clients (prefer env AUTOBATCH_AUTH_TOKEN)
  --max-body-bytes N          largest request body, 413 above (default ${SERVE_DEFAULTS.maxBodyBytes})
  --shutdown-timeout-ms MS    on SIGINT/SIGTERM, wait this long for running calls, then cancel (default ${SERVE_DEFAULTS.shutdownTimeoutMs})
  --idempotency-ttl-ms MS     how long an Idempotency-Key is remembered (default ${SERVE_DEFAULTS.idempotencyTtlMs})

state:
  --store PATH|URL            keep state in a SQLite file or a postgres:// URL: keyed answers and calls in flight
                              survive a restart (default: serve.db in $XDG_STATE_HOME/autobatch, else
                              ~/.local/state/autobatch)
  --no-store                  keep state in memory only
  -h, --help                  show this help

Logs are JSON lines on stdout. The API key and auth token are never logged.`;

/** Option names as the user typed them, so core validation messages name the flag. */
const FLAG_OF: Record<string, string> = {
  apiKey: "--api-key",
  baseURL: "--base-url",
  batchSize: "--batch-size",
  maxBatchBytes: "--max-batch-bytes",
  batchWindowMs: "--batch-window-ms",
  pollIntervalMs: "--poll-interval-ms",
  completionWindow: "--completion-window",
  metadata: "--metadata",
  port: "--port",
  host: "--host",
  authToken: "--auth-token",
  maxBodyBytes: "--max-body-bytes",
  shutdownTimeoutMs: "--shutdown-timeout-ms",
  idempotencyTtlMs: "--idempotency-ttl-ms",
  store: "--store",
};

/** Where `autobatch serve` keeps its state unless told otherwise (the XDG base directory rule). */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  const state = nonEmpty(env.XDG_STATE_HOME) ?? join(homedir(), ".local", "state");
  return join(state, "autobatch", "serve.db");
}

/** Trimmed, and empty means unset: the rule the library applies to the same environment variables. */
const nonEmpty = (v: string | undefined): string | undefined => v?.trim() || undefined;

/** Parses the command line (and env) into serve options; `undefined` means help was asked for. */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions | undefined {
  const values = parseFlags(argv, {
    "base-url": { type: "string" },
    "api-key": { type: "string" },
    "completion-window": { type: "string" },
    metadata: { type: "string", multiple: true },
    "batch-size": { type: "string" },
    "max-batch-bytes": { type: "string" },
    "batch-window-ms": { type: "string" },
    "poll-interval-ms": { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    "auth-token": { type: "string" },
    "max-body-bytes": { type: "string" },
    "shutdown-timeout-ms": { type: "string" },
    "idempotency-ttl-ms": { type: "string" },
    store: { type: "string" },
    "no-store": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return undefined;
  const apiKey = nonEmpty(values["api-key"]) ?? nonEmpty(env.OPENAI_API_KEY);
  if (!apiKey) throw new UsageError("--api-key is required (or set OPENAI_API_KEY)");
  const options: ServeOptions = { apiKey };
  const baseURL = nonEmpty(values["base-url"]) ?? nonEmpty(env.OPENAI_BASE_URL);
  if (baseURL !== undefined) {
    httpURL("base-url", baseURL);
    options.baseURL = baseURL;
  }
  const authToken = values["auth-token"] ?? nonEmpty(env.AUTOBATCH_AUTH_TOKEN);
  if (authToken !== undefined) {
    if (authToken.trim() === "") throw new UsageError("--auth-token: must not be empty");
    options.authToken = authToken;
  }
  if (values["completion-window"] !== undefined) options.completionWindow = values["completion-window"];
  if (values.metadata) {
    const metadata: Record<string, string> = {};
    for (const pair of values.metadata) {
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new UsageError(`--metadata: expected KEY=VALUE, got '${pair}'`);
      metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    options.metadata = metadata;
  }
  const v = values;
  if (v["batch-size"] !== undefined)
    options.batchSize = number("batch-size", v["batch-size"], { integer: true, min: 1 });
  if (v["max-batch-bytes"] !== undefined)
    options.maxBatchBytes = number("max-batch-bytes", v["max-batch-bytes"], { integer: true, min: 1 });
  if (v["batch-window-ms"] !== undefined) options.batchWindowMs = number("batch-window-ms", v["batch-window-ms"]);
  if (v["poll-interval-ms"] !== undefined) {
    options.pollIntervalMs = number("poll-interval-ms", v["poll-interval-ms"], { exclusive: true });
  }
  if (v.host !== undefined) {
    if (v.host.trim() === "") throw new UsageError("--host: must not be empty");
    options.host = v.host;
  }
  if (v.port !== undefined) options.port = port("port", v.port);
  if (v["max-body-bytes"] !== undefined)
    options.maxBodyBytes = number("max-body-bytes", v["max-body-bytes"], { integer: true, min: 1 });
  if (v["shutdown-timeout-ms"] !== undefined)
    options.shutdownTimeoutMs = number("shutdown-timeout-ms", v["shutdown-timeout-ms"]);
  if (v["idempotency-ttl-ms"] !== undefined)
    options.idempotencyTtlMs = number("idempotency-ttl-ms", v["idempotency-ttl-ms"]);
  if (v["no-store"] && v.store !== undefined) throw new UsageError("--store and --no-store exclude each other");
  if (v.store !== undefined && v.store.trim() === "") throw new UsageError("--store: must not be empty");
  options.store = v["no-store"] ? false : (v.store ?? defaultStorePath(env));
  return options;
}

/**
 * serve()'s error in the user's terms: each issue under the flag of the option it concerns (`--batch-size: must be
 * <= 50000` where the library says `batchSize: batchSize must be <= 50000`).
 */
function withFlagNames(err: InvalidOptionsError): string {
  if (err.issues.length === 0) return err.message;
  const title = err.message.split("\n", 1)[0];
  const lines = err.issues.map(({ path, message }) => {
    const option = String(path[0]);
    const flag = FLAG_OF[option];
    if (flag === undefined) return `${path.length ? path.join(".") : "options"}: ${message}`;
    const within = path.length > 1 ? ` (${path.slice(1).join(".")})` : "";
    // Library messages open with the option's name; once, as the flag, is enough.
    return `${flag}${within}: ${message.startsWith(`${option} `) ? message.slice(option.length + 1) : message}`;
  });
  return `${title}\n  ${lines.join("\n  ")}`;
}

export const command = {
  async run(argv: string[]): Promise<number> {
    let options: ServeOptions | undefined;
    try {
      options = parseServeArgs(argv);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      console.error(`autobatch serve: ${err.message}\n\nRun \`autobatch serve --help\` for the options.`);
      return 2;
    }
    if (!options) {
      console.log(USAGE);
      return 0;
    }
    let handle: ServeHandle;
    try {
      // The default folder may not exist yet; a path the user gave is taken as it is.
      if (typeof options.store === "string" && !isPostgresURL(options.store) && options.store === defaultStorePath())
        mkdirSync(join(options.store, ".."), { recursive: true });
      handle = await serve(options);
    } catch (err) {
      if (err instanceof InvalidOptionsError) {
        console.error(`autobatch serve: ${withFlagNames(err)}`);
        return 2;
      }
      if (err instanceof StoreError) {
        console.error(`autobatch serve: ${err.message}`);
        return 1;
      }
      const code = (err as { code?: string }).code;
      if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
        console.error(
          `autobatch serve: cannot listen on ${options.host ?? SERVE_DEFAULTS.host}:${options.port ?? SERVE_DEFAULTS.port}: ${(err as Error).message}`,
        );
        return 1;
      }
      throw err;
    }
    const log = createLogger(undefined);
    const h = handle;
    await new Promise<void>((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          log("warn", "serve.forced_exit", { signal });
          process.exit(128 + (constants.signals[signal] ?? 1));
        }
        stopping = true;
        log("info", "serve.signal", { signal, next: "draining; send the signal again to exit at once" });
        void h.close().then(() => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          resolve();
        });
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    });
    return 0;
  },
};
