// The pure parts of `serve`: routing, error mapping, the idempotency cache, CLI flag parsing.
import { describe, expect, it, vi } from "vitest";
import type { ServerResponse } from "node:http";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  BatchFailedError,
  ClientClosedError,
  InvalidParamsError,
  ResultParseError,
} from "../../src/errors.js";
import { UsageError } from "../../src/cli/args.js";
import { command, parseServeArgs } from "../../src/cli/serve.js";
import { clientErrorStatus, HttpError, toHttpError } from "../../src/serve/errors.js";
import { IdempotencyCache } from "../../src/serve/idempotency.js";
import { normalizePath, route } from "../../src/serve/routes.js";
import { serve } from "../../src/serve/index.js";
import { sendError } from "../../src/serve/errors.js";
import { InvalidOptionsError } from "../../src/options.js";
import { Events } from "../../src/events.js";
import { createLogger, logEngineEvents, type LogEntry } from "../../src/serve/log.js";

describe("routes", () => {
  it("ignores query strings, fragments, trailing and doubled slashes", () => {
    expect(normalizePath("/v1/chat/completions/?x=1")).toBe("/v1/chat/completions");
    expect(normalizePath("//v1//embeddings#f")).toBe("/v1/embeddings");
    expect(route("POST", "/v1/responses?stream=1")).toEqual({ kind: "batch", endpoint: "/v1/responses" });
    expect(route("GET", "/v1/models/org/model-1/?limit=5#f")).toEqual({
      kind: "models",
      path: "/models/org/model-1",
      query: { limit: "5" },
    });
    expect(route("HEAD", "/health")).toEqual({ kind: "health" });
  });

  it("answers 405 with Allow on known paths, 404 elsewhere", () => {
    const notAllowed = route("DELETE", "/v1/models") as HttpError;
    expect([notAllowed.status, notAllowed.headers.allow]).toEqual([405, "GET"]);
    const missing = route("POST", "/v2/chat") as HttpError;
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ type: "invalid_request_error", code: "unknown_url", param: null });
  });

  it("refuses dot segments under /v1/models in every spelling, and re-encodes the rest", () => {
    const traversals = [
      "/v1/models/..",
      "/v1/models/../files",
      "/v1/models/%2e%2e/files",
      "/v1/models/%2E%2E/batches",
      "/v1/models/.%2e/batches",
      "/v1/models/%2e%2e/%2e%2e/_emulator/counters",
      "/v1/models/./m",
      "/v1/models/%2e",
      "/v1/models/x%2F..%2Ffiles",
      "/v1/models/x%2F%2Ffiles",
      "/v1/models/..%5Cfiles",
      "/v1/models/a\\..\\files",
      "/v1/models/%E0%A4%A",
    ];
    for (const url of traversals) {
      const r = route("GET", url) as HttpError;
      expect(r, url).toBeInstanceOf(HttpError);
      expect([r.status, r.body.code, r.headers["x-should-retry"]], url).toEqual([400, "invalid_path", "false"]);
    }
    expect(route("GET", "/v1/models/meta-llama%2FLlama-3")).toMatchObject({ path: "/models/meta-llama%2FLlama-3" });
    expect(route("GET", "/v1/models/a b:c?x=1&x=2")).toEqual({
      kind: "models",
      path: "/models/a%20b%3Ac",
      query: { x: "2" },
    });
    expect(route("GET", "/v1/models/..ok./m")).toMatchObject({ path: "/models/..ok./m" });
  });
});

describe("error mapping", () => {
  const ctx = { customId: "c", batchId: "b" };
  it("keeps a failed line's status and the provider's error object", () => {
    const e = toHttpError(
      APIError.generate(
        429,
        { message: "slow down", type: "rate_limit_exceeded", param: null, code: "rl", extra: 1 },
        undefined,
        undefined,
        ctx,
      ),
    );
    expect(e.status).toBe(429);
    expect(e.body).toEqual({ message: "slow down", type: "rate_limit_exceeded", param: null, code: "rl", extra: 1 });
    expect(e.headers["x-should-retry"]).toBeUndefined();
  });

  it("maps batch-level failures to 502/504 with x-should-retry: false", () => {
    const failed = toHttpError(new BatchFailedError("gone", { ...ctx, batchStatus: "failed" }));
    expect([failed.status, failed.body.code, failed.headers["x-should-retry"]]).toEqual([502, "batch_failed", "false"]);
    expect(toHttpError(new BatchFailedError("late", { ...ctx, batchStatus: "expired" })).status).toBe(504);
    // Given up on while still running: past its deadline.
    expect(toHttpError(new BatchFailedError("late", { ...ctx, batchStatus: "in_progress" })).status).toBe(504);
    expect(toHttpError(new ResultParseError("bad line", ctx)).headers["x-should-retry"]).toBe("false");
  });

  it("maps invalid params to 400 naming the param, and other failures to 5xx", () => {
    const bad = toHttpError(new InvalidParamsError("messages must not be empty", "messages"));
    expect([bad.status, bad.body.param, bad.headers["x-should-retry"]]).toEqual([400, "messages", "false"]);
    expect(toHttpError(new APIConnectionError("down")).status).toBe(502);
    expect(toHttpError(new ClientClosedError("closed")).status).toBe(503);
    expect(toHttpError(new Error("boom"))).toMatchObject({ status: 500, body: { type: "server_error" } });
    expect(toHttpError(new APIConnectionTimeoutError("slow"))).toMatchObject({
      status: 504,
      body: { code: "upstream_timeout" },
    });
  });

  it("answers a line status that is not an HTTP error status with 502, keeping the provider's error", () => {
    for (const status of [100, 200, 302, 399, 600, 999, 1000, 42.5, Number.NaN]) {
      const e = toHttpError(new APIError(status, { message: "odd", type: "x", param: null, code: "c" }, undefined));
      expect([e.status, e.body.code], String(status)).toEqual([502, "c"]);
    }
    expect([400, 404, 499, 500, 599].map(clientErrorStatus)).toEqual([400, 404, 499, 500, 599]);
  });

  it("sends errors without ever throwing: a response that cannot be written is cut", () => {
    const trace: Record<string, unknown> = {};
    let destroyed = false;
    const res = {
      destroyed: false,
      headersSent: false,
      writeHead() {
        throw new TypeError("Invalid character in header content");
      },
      destroy() {
        destroyed = true;
      },
    } as unknown as ServerResponse;
    expect(() => sendError({ closing: false }, res, APIError.generate(429, undefined, "slow"), trace)).not.toThrow();
    expect(destroyed).toBe(true);
    expect(trace.sendFailed).toContain("Invalid character");
  });
});

describe("IdempotencyCache", () => {
  function setup(ttlMs = 1_000, maxKeys = 10) {
    let now = 0;
    const cache = new IdempotencyCache<string>({
      ttlMs,
      maxKeys,
      keepFailure: (e) => (e as Error).message !== "retryable",
      now: () => now,
    });
    return { cache, advance: (ms: number) => (now += ms) };
  }
  const deferred = () => {
    let resolve!: (v: string) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
    return { promise, resolve, reject };
  };

  it("starts one call per key and replays it until the TTL passes", async () => {
    const { cache, advance } = setup();
    let starts = 0;
    const start = () => (starts++, Promise.resolve("r"));
    expect(cache.attach("k", "f", start).reused).toBe(false);
    const again = cache.attach("k", "f", start);
    expect([again.reused, await again.result, starts]).toEqual([true, "r", 1]);
    await Promise.resolve();
    advance(999);
    expect(cache.attach("k", "f", start).reused).toBe(true);
    advance(2);
    expect(cache.attach("k", "f", start).reused).toBe(false);
    expect(starts).toBe(2);
  });

  it("refuses the same key with another fingerprint", () => {
    const { cache } = setup();
    cache.attach("k", "f1", () => new Promise(() => undefined));
    expect(() => cache.attach("k", "f2", () => Promise.resolve("x"))).toThrow(expect.objectContaining({ status: 422 }));
  });

  it("forgets retryable failures so a retry runs anew, but keeps final ones", async () => {
    const { cache } = setup();
    const a = cache.attach("a", "f", () => Promise.reject(new Error("retryable")));
    await a.result.catch(() => undefined);
    expect(cache.attach("a", "f", () => Promise.resolve("x")).reused).toBe(false);
    const b = cache.attach("b", "f", () => Promise.reject(new Error("final")));
    await b.result.catch(() => undefined);
    expect(cache.attach("b", "f", () => Promise.resolve("x")).reused).toBe(true);
  });

  it("aborts a call only when its last waiter left and none came back within the TTL", async () => {
    const { cache } = setup(5);
    let signal!: AbortSignal;
    const d = deferred();
    const one = cache.attach("k", "f", (s) => ((signal = s), d.promise));
    const two = cache.attach("k", "f", () => d.promise);
    one.leave();
    one.leave();
    await new Promise((r) => setTimeout(r, 20));
    expect(signal.aborted).toBe(false);
    two.leave();
    const three = cache.attach("k", "f", () => d.promise);
    expect(three.reused).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(signal.aborted).toBe(false);
    three.leave();
    await new Promise((r) => setTimeout(r, 20));
    expect(signal.aborted).toBe(true);
    expect(cache.size).toBe(0);
  });

  it("stays within maxKeys by forgetting the oldest settled keys", async () => {
    const { cache } = setup(1_000, 2);
    for (const k of ["a", "b", "c"]) await cache.attach(k, "f", () => Promise.resolve(k)).result;
    await Promise.resolve();
    expect(cache.size).toBe(2);
    expect(cache.attach("a", "f", () => Promise.resolve("new")).reused).toBe(false);
  });
});

describe("parseServeArgs", () => {
  const env = { OPENAI_API_KEY: "sk-env" };
  it("reads flags with fractions for milliseconds and env for the upstream and token", () => {
    const o = parseServeArgs(
      [
        "--batch-window-ms",
        "0.5",
        "--poll-interval-ms",
        "2.5",
        "--batch-size",
        "10",
        "--port",
        "0",
        "--metadata",
        "team=a=b",
      ],
      {
        ...env,
        OPENAI_BASE_URL: "http://127.0.0.1:1/v1",
        AUTOBATCH_AUTH_TOKEN: "tok",
      },
    );
    expect(o).toMatchObject({
      apiKey: "sk-env",
      baseURL: "http://127.0.0.1:1/v1",
      authToken: "tok",
      batchWindowMs: 0.5,
      pollIntervalMs: 2.5,
      batchSize: 10,
      port: 0,
      metadata: { team: "a=b" },
    });
    expect(parseServeArgs(["--api-key", "sk-flag", "--base-url", "https://x.test/v1"], env)).toMatchObject({
      apiKey: "sk-flag",
      baseURL: "https://x.test/v1",
    });
    expect(parseServeArgs(["-h"], env)).toBeUndefined();
  });

  it("reads the bounds and load flags", () => {
    const flags = [
      ["--request-deadline-ms", "3000"],
      ["--max-response-bytes", "1000"],
      ["--max-result-line-bytes", "2000"],
      ["--max-waiting-requests", "50"],
      ["--client-headers-timeout-ms", "100"],
      ["--client-request-timeout-ms", "200"],
      ["--allow-unauthenticated"],
    ].flat();
    expect(parseServeArgs(flags, env)).toMatchObject({
      requestDeadlineMs: 3000,
      maxResponseBytes: 1000,
      maxResultLineBytes: 2000,
      maxWaitingRequests: 50,
      clientHeadersTimeoutMs: 100,
      clientRequestTimeoutMs: 200,
      allowUnauthenticated: true,
    });
    expect(() => parseServeArgs(["--max-waiting-requests", "0"], env)).toThrow(
      /--max-waiting-requests: expected a number >= 1/,
    );
  });

  it("rejects bad flags with a message naming the flag", () => {
    const cases: [string[], RegExp][] = [
      [["--batch-size", "1.5"], /--batch-size: expected a whole number/],
      [["--batch-window-ms", "soon"], /--batch-window-ms: expected a number/],
      [["--poll-interval-ms", "0"], /--poll-interval-ms: expected a number > 0/],
      [["--port", "70000"], /--port/],
      [["--max-body-bytes", "-1"], /--max-body-bytes/],
      [["--metadata", "novalue"], /--metadata: expected KEY=VALUE/],
      [["--base-url", "ftp://x"], /--base-url/],
      [["--base-url", "ftp://user:hunter2@x.test/v1?key=sk-q"], /got 'ftp:\/\/\*\*\*@x\.test\/v1'$/],
      [["--bogus"], /bogus/],
    ];
    for (const [argv, message] of cases) expect(() => parseServeArgs(argv, env)).toThrow(message);
    expect(() => parseServeArgs([], {})).toThrow(UsageError);
    expect(() => parseServeArgs([], {})).toThrow(/--api-key/);
  });

  it("never echoes credentials or a query from a rejected --base-url", () => {
    for (const bad of [
      "ftp://user:hunter2@x.test/v1",
      "user:hunter2@x.test/v1",
      "https:/user:hunter2@x.test",
      "x.test/v1?api_key=hunter2",
      "//u:hunter2@x#hunter2",
    ]) {
      let message = "";
      try {
        parseServeArgs(["--base-url", bad], env);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, bad).toMatch(/^--base-url: expected an http\(s\) URL/);
      expect(message, bad).not.toContain("hunter2");
    }
  });
});

describe("serve() options", () => {
  it("refuses bad serve options before listening", async () => {
    await expect(serve({ apiKey: "k", port: 1.5, log: false })).rejects.toThrow(InvalidOptionsError);
    await expect(serve({ apiKey: "k", maxBodyBytes: 0, log: false })).rejects.toThrow(/maxBodyBytes/);
    await expect(serve({ apiKey: "k", batchSize: 0.5, log: false })).rejects.toThrow(/batchSize/);
    // One error lists every bad option, the proxy's and the core's alike.
    const err = await serve({ apiKey: "k", port: 70_000, log: 3 as never, batchSize: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as Error).message).toMatch(/port: port must be a whole number from 0 to 65535/);
    expect((err as Error).message).toMatch(/log: log must be a function or false/);
    expect((err as Error).message).toMatch(/batchSize: batchSize must be > 0/);
  });
});

describe("autobatch serve: option errors", () => {
  it("names the flag of each value the flag parser let through but the options refuse", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      const code = await command.run([
        "--api-key",
        "k",
        "--port",
        "0",
        "--batch-size",
        "60000",
        "--metadata",
        "autobatch_key=x",
        "--max-batch-bytes",
        "1e300",
      ]);
      expect(code).toBe(2);
      expect(errors).toHaveBeenCalledOnce();
      const message = String(errors.mock.calls[0]![0]);
      expect(message.split("\n")).toEqual([
        "autobatch serve: Invalid serve options:",
        '  --metadata: key "autobatch_key" is reserved: autobatch tags each batch with it',
        "  --batch-size: must be <= 50000",
        "  --max-batch-bytes: must be a whole number",
      ]);
    } finally {
      errors.mockRestore();
    }
  });

  it("keeps the structured issues on InvalidOptionsError", async () => {
    const err = (await serve({ apiKey: "k", port: -1, metadata: { k: "v".repeat(600) }, log: false }).catch(
      (e: unknown) => e,
    )) as InvalidOptionsError;
    expect(err.issues).toEqual([
      { path: ["metadata", "k"], message: "metadata values are at most 512 characters" },
      { path: ["port"], message: "port must be a whole number from 0 to 65535" },
    ]);
  });
});

describe("engine event logs", () => {
  it("logs each batch lifecycle event once, at its level, and leaves per-call events to the request log", () => {
    const entries: LogEntry[] = [];
    const events = new Events();
    logEngineEvents(
      createLogger((e) => entries.push(e)),
      events,
    );
    const counts = { total: 1, completed: 1, failed: 0 };
    events.emit("flush", { endpoint: "/v1/chat/completions", model: "m", calls: 1, bytes: 10, reason: "size" });
    events.emit("batchDone", { batchId: "b1", status: "completed", counts, succeeded: 1, failed: 0, calls: 1 });
    events.emit("batchDone", { batchId: "b2", status: "expired", counts, succeeded: 0, failed: 1, calls: 1 });
    events.emit("batchSubmitFailed", { endpoint: "/v1/embeddings", model: "m", calls: 2, message: "boom" });
    events.emit("callSettled", { customId: "c", ok: true });
    expect(entries.map(({ ts: _ts, ...rest }) => rest)).toEqual([
      {
        level: "info",
        event: "batch.flushed",
        endpoint: "/v1/chat/completions",
        model: "m",
        calls: 1,
        bytes: 10,
        reason: "size",
      },
      {
        level: "info",
        event: "batch.done",
        batchId: "b1",
        status: "completed",
        counts,
        succeeded: 1,
        failed: 0,
        calls: 1,
      },
      {
        level: "warn",
        event: "batch.done",
        batchId: "b2",
        status: "expired",
        counts,
        succeeded: 0,
        failed: 1,
        calls: 1,
      },
      {
        level: "error",
        event: "batch.submit_failed",
        endpoint: "/v1/embeddings",
        model: "m",
        calls: 2,
        message: "boom",
      },
    ]);
    expect(events.wants("callSettled")).toBe(false);
    expect(events.wants("batchProgress") && events.wants("warning") && events.wants("batchSubmitted")).toBe(true);
  });
});
