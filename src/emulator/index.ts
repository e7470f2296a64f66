// startEmulator(): a local OpenAI-compatible Batch API server (Doubleword or OpenAI flavor).
import { bearerCheck } from "../server-kit/bearer.js";
import { isLoopbackHost } from "../server-kit/loopback.js";
import type { AddressInfo } from "node:net";
import { Faults } from "./faults.js";
import { ROUTES } from "./routes/index.js";
import { Runner } from "./runner.js";
import { createEmulatorServer } from "./server.js";
import { Store } from "./store.js";
import { Upstream } from "./upstream.js";
import { EMULATOR_DEFAULTS as D } from "./defaults.js";
import type { Emulator, EmulatorCounters, EmulatorOptions } from "./types.js";

export type {
  Emulator,
  EmulatorCounters,
  EmulatorOptions,
  FaultController,
  FaultSpec,
  Flavor,
  UpstreamOptions,
} from "./types.js";
export { EMULATOR_DEFAULTS } from "./defaults.js";

/** mulberry32: a tiny seedable PRNG, enough for reproducible latency draws. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function latencySampler(latency: EmulatorOptions["latencyMs"], seed: number): () => number {
  if (latency === undefined) return () => 0;
  if (typeof latency === "number") return () => latency;
  const [min, max] = latency;
  const next = rng(seed);
  return () => min + next() * (max - min);
}

/** `value`, or `fallback` when unset; a negative or non-finite value is refused naming the option. */
function nonNegativeOr(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`startEmulator: ${name} must be a non-negative number`);
  return value;
}

function newCounters(): EmulatorCounters {
  return {
    requests: {},
    batchesCreated: 0,
    filesUploaded: 0,
    bytesServed: {},
    linesServed: {},
    linesExecuted: 0,
    faultsInjected: 0,
  };
}

/**
 * Starts a local OpenAI-compatible Batch API server on loopback: files, batches and results as Doubleword (default)
 * or OpenAI serve them, answered by a built-in model (or a real-time upstream), with fault hooks for tests.
 *
 * @example
 * ```ts
 * import { AutoBatcher } from "autobatch";
 * import { startEmulator } from "autobatch/emulator";
 *
 * const emu = await startEmulator({ flavor: "openai" });
 * const client = new AutoBatcher({ apiKey: "any", baseURL: emu.baseURL, batchWindowMs: 10, pollIntervalMs: 10 });
 * await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }); // "echo: hi"
 * await client.close();
 * await emu.close();
 * ```
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const flavor = options.flavor ?? D.flavor;
  if (flavor !== "doubleword" && flavor !== "openai")
    throw new RangeError(`startEmulator: unknown flavor '${String(flavor)}'`);
  const host = options.host ?? D.host;
  const cursorParam = options.contentCursorParam ?? D.contentCursorParam;
  const now = options.now ?? Date.now;
  const latency = options.latencyMs;
  if (Array.isArray(latency) && !(latency[0] >= 0 && latency[1] >= latency[0])) {
    throw new RangeError("startEmulator: latencyMs range must be [min, max] with 0 <= min <= max");
  }
  const upstream = options.upstream ? new Upstream(options.upstream) : undefined;
  const concurrency = upstream
    ? (options.upstream?.concurrency ?? D.upstreamConcurrency)
    : (options.concurrency ?? D.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError("startEmulator: concurrency must be a positive integer");

  const counters = newCounters();
  const store = new Store(nonNegativeOr("maxStoredBytes", options.maxStoredBytes, D.maxStoredBytes));
  const runner = new Runner({
    flavor,
    store,
    counters,
    concurrency,
    validationMs: nonNegativeOr("validationMs", options.validationMs, D.validationMs),
    maxLines: options.maxLines ?? D.maxLines,
    ...(options.enqueuedTokenLimit !== undefined && {
      enqueuedTokenLimit: nonNegativeOr("enqueuedTokenLimit", options.enqueuedTokenLimit, 0),
    }),
    ...(options.apiKey !== undefined && { apiKey: options.apiKey }),
    now,
    latency: latencySampler(
      typeof latency === "number" ? nonNegativeOr("latencyMs", latency, D.latencyMs) : latency,
      options.seed ?? Math.floor(Math.random() * 2 ** 32),
    ),
    ...(upstream ? { upstream } : {}),
  });
  const faults = new Faults(ROUTES.map((r) => r.key));
  const closing = new AbortController();

  const server = createEmulatorServer({
    routes: {
      flavor,
      store,
      runner,
      counters,
      now,
      cursorParam,
      maxFileBytes: nonNegativeOr("maxFileBytes", options.maxFileBytes, D.maxFileBytes),
      maxLines: options.maxLines,
      completionWindows: options.completionWindows ?? [...D.completionWindows],
      listLagMs: nonNegativeOr("listLagMs", options.listLagMs, D.listLagMs),
    },
    admin: {
      flavor,
      cursorParam,
      counters,
      resetCounters: () => Object.assign(counters, newCounters()),
      faults,
      store,
      runner,
    },
    faults,
    authorized: bearerCheck(options.apiKey),
    adminOpen: options.apiKey !== undefined || isLoopbackHost(host),
    closing: closing.signal,
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? D.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    baseURL: `http://${urlHost}:${port}/v1`,
    origin: `http://${urlHost}:${port}`,
    port,
    counters,
    faults,
    lineAvailableAt: (customId) => store.availableAt.get(customId),
    expireNow(batchId) {
      const batch = store.batches.get(batchId);
      if (!batch) throw new Error(`expireNow: unknown batch ${batchId}`);
      runner.expire(batch);
    },
    close() {
      closed ??= (async () => {
        closing.abort();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await runner.close();
        await upstream?.close();
        await stopped;
      })();
      return closed;
    },
  };
}
