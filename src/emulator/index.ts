// startEmulator(): a local OpenAI-compatible Batch API server (Doubleword or OpenAI flavor).
import { bearerCheck } from "../server-kit/bearer.js";
import { isLoopbackHost } from "../server-kit/loopback.js";
import type { AddressInfo } from "node:net";
import { Faults } from "./faults.js";
import { ROUTES } from "./routes.js";
import { Runner } from "./runner.js";
import { createEmulatorServer } from "./server.js";
import { Store } from "./store.js";
import { Upstream } from "./upstream.js";
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

const GiB = 1024 * 1024 * 1024;

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

function positive(name: string, value: number | undefined, fallback: number): number {
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

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const flavor = options.flavor ?? "doubleword";
  if (flavor !== "doubleword" && flavor !== "openai")
    throw new RangeError(`startEmulator: unknown flavor '${String(flavor)}'`);
  const host = options.host ?? "127.0.0.1";
  const cursorParam = options.contentCursorParam ?? "skip";
  const now = options.now ?? Date.now;
  const latency = options.latencyMs;
  if (Array.isArray(latency) && !(latency[0] >= 0 && latency[1] >= latency[0])) {
    throw new RangeError("startEmulator: latencyMs range must be [min, max] with 0 <= min <= max");
  }
  const upstream = options.upstream ? new Upstream(options.upstream) : undefined;
  const concurrency = upstream ? (options.upstream?.concurrency ?? 8) : (options.concurrency ?? 64);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new RangeError("startEmulator: concurrency must be a positive integer");

  const counters = newCounters();
  const store = new Store(positive("maxStoredBytes", options.maxStoredBytes, GiB));
  const runner = new Runner({
    flavor,
    store,
    counters,
    concurrency,
    validationMs: positive("validationMs", options.validationMs, 0),
    maxLines: options.maxLines ?? 50_000,
    ...(options.enqueuedTokenLimit !== undefined && {
      enqueuedTokenLimit: positive("enqueuedTokenLimit", options.enqueuedTokenLimit, 0),
    }),
    ...(options.apiKey !== undefined && { apiKey: options.apiKey }),
    now,
    latency: latencySampler(
      typeof latency === "number" ? positive("latencyMs", latency, 0) : latency,
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
      maxFileBytes: positive("maxFileBytes", options.maxFileBytes, 100 * 1024 * 1024),
      maxLines: options.maxLines,
      completionWindows: options.completionWindows ?? ["24h", "1h"],
      listLagMs: positive("listLagMs", options.listLagMs, 0),
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
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/v1`,
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
