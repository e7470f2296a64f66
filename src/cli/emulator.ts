// `autobatch emulator`: runs the local Batch API server until SIGINT/SIGTERM.
import { httpURL, number, oneOf, parseFlags, port, UsageError } from "./args.js";
import { safeURL } from "../internal/safe-url.js";
import { startEmulator } from "../emulator/index.js";
import type { EmulatorOptions } from "../emulator/types.js";
import { EMULATOR_DEFAULTS as D } from "../emulator/defaults.js";

/** The CLI's own port: a fixed one is easier to point a client at than startEmulator()'s free port. */
const CLI_PORT = 8787;

const STORED_GIB = D.maxStoredBytes / 1024 ** 3;

const USAGE = `usage: autobatch emulator [options]

Runs a local OpenAI-compatible Batch API server (no network, no key needed).

options:
  --port N                  port to listen on; 0 picks a free one (default ${CLI_PORT})
  --host H                  interface to bind (default ${D.host})
  --flavor F                doubleword | openai (default ${D.flavor})
  --api-key K               require "Authorization: Bearer K" on every route
  --latency-ms N|MIN,MAX    per-line latency in ms, fixed or uniform random (default ${D.latencyMs})
  --seed N                  seed for random latency (default random)
  --concurrency N           lines executed at once (default ${D.concurrency})
  --validation-ms N         time a batch stays "validating", in ms (default ${D.validationMs})
  --enqueued-token-limit N  openai flavor: input tokens one model's unfinished batches may hold (default: no limit)
  --cursor-param P          skip | offset: content cursor parameter (default ${D.contentCursorParam})
  --upstream URL            execute lines against this real-time server, e.g. http://127.0.0.1:8000/v1
  --upstream-api-key K      key for the upstream (default env AUTOBATCH_UPSTREAM_API_KEY)
  --upstream-concurrency N  upstream requests at once (default ${D.upstreamConcurrency})
  --max-stored-bytes N      bytes of files kept in memory; oldest finished batches evicted beyond (default ${STORED_GIB} GiB)
  -h, --help                show this help`;

const int = (flag: string, raw: string, min: number) => number(flag, raw, { integer: true, min });

/** Parses the command line into emulator options; `undefined` means help was asked for. */
export function parseEmulatorArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): EmulatorOptions | undefined {
  const values = parseFlags(argv, {
    port: { type: "string" },
    host: { type: "string" },
    flavor: { type: "string" },
    "api-key": { type: "string" },
    "latency-ms": { type: "string" },
    seed: { type: "string" },
    concurrency: { type: "string" },
    "validation-ms": { type: "string" },
    "enqueued-token-limit": { type: "string" },
    "cursor-param": { type: "string" },
    upstream: { type: "string" },
    "upstream-api-key": { type: "string" },
    "upstream-concurrency": { type: "string" },
    "max-stored-bytes": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return undefined;
  const options: EmulatorOptions = {
    port: values.port === undefined ? CLI_PORT : port("port", values.port),
    host: values.host ?? D.host,
    flavor: values.flavor === undefined ? D.flavor : oneOf("flavor", values.flavor, ["doubleword", "openai"] as const),
  };
  if (values["api-key"] !== undefined) options.apiKey = values["api-key"];
  const latency = values["latency-ms"];
  if (latency !== undefined) {
    const parts = latency.split(",");
    if (parts.length === 1) options.latencyMs = int("latency-ms", latency, 0);
    else if (parts.length === 2) {
      const [min, max] = parts.map((p) => int("latency-ms", p.trim(), 0));
      if (max < min) throw new UsageError(`--latency-ms: MIN must not exceed MAX, got '${latency}'`);
      options.latencyMs = [min, max];
    } else throw new UsageError(`--latency-ms: expected N or MIN,MAX, got '${latency}'`);
  }
  if (values["max-stored-bytes"] !== undefined)
    options.maxStoredBytes = int("max-stored-bytes", values["max-stored-bytes"], 1);
  if (values.seed !== undefined) options.seed = int("seed", values.seed, 0);
  if (values.concurrency !== undefined) options.concurrency = int("concurrency", values.concurrency, 1);
  if (values["validation-ms"] !== undefined) options.validationMs = int("validation-ms", values["validation-ms"], 0);
  if (values["enqueued-token-limit"] !== undefined)
    options.enqueuedTokenLimit = int("enqueued-token-limit", values["enqueued-token-limit"], 0);
  if (values["cursor-param"] !== undefined)
    options.contentCursorParam = oneOf("cursor-param", values["cursor-param"], ["skip", "offset"] as const);
  const upstreamKey = values["upstream-api-key"] ?? env.AUTOBATCH_UPSTREAM_API_KEY;
  if (values.upstream !== undefined) {
    options.upstream = {
      baseURL: httpURL("upstream", values.upstream),
      ...(upstreamKey ? { apiKey: upstreamKey } : {}),
      ...(values["upstream-concurrency"] !== undefined
        ? { concurrency: int("upstream-concurrency", values["upstream-concurrency"], 1) }
        : {}),
    };
  } else if (values["upstream-concurrency"] !== undefined || values["upstream-api-key"] !== undefined) {
    throw new UsageError("--upstream-api-key and --upstream-concurrency need --upstream");
  }
  return options;
}

export const command = {
  async run(argv: string[]): Promise<number> {
    let options: EmulatorOptions | undefined;
    try {
      options = parseEmulatorArgs(argv);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      console.error(`autobatch emulator: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (!options) {
      console.log(USAGE);
      return 0;
    }
    const emulator = await startEmulator(options);
    const upstream = options.upstream ? `, upstream ${safeURL(options.upstream.baseURL)}` : "";
    console.log(`autobatch emulator listening on ${emulator.baseURL} (flavor ${options.flavor}${upstream})`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await emulator.close();
    return 0;
  },
};
