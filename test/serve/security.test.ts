// `serve` against hostile input: paths that would leave /v1/models upstream, line statuses no HTTP answer can carry.
import http from "node:http";
import OpenAI from "openai";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { realClock } from "../../src/internal/clock.js";
import { Transport } from "../../src/internal/transport.js";
import { passthroughModels } from "../../src/serve/models.js";
import { resolveOptions } from "../../src/options-resolve.js";
import { json, scriptedServer } from "../helpers/server.js";
import { startHarness, UPSTREAM_KEY, type Harness } from "../helpers/serve-harness.js";

const AUTH = { authorization: "Bearer proxy-token" };

/** A GET with the path exactly as written: undici and fetch would resolve `..` before sending it. */
function rawGet(origin: string, path: string): Promise<{ status: number; body: any }> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, headers: AUTH }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || "null") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const TRAVERSALS = [
  "/v1/models/../files",
  "/v1/models/%2e%2e/files",
  "/v1/models/%2e%2e/batches",
  "/v1/models/%2E%2E/batches?limit=100",
  "/v1/models/%2e%2e/%2e%2e/_emulator/counters",
  "/v1/models/../../_emulator/counters",
  "/v1/models/x/../../files",
  "/v1/models/x%2F..%2F..%2Ffiles",
  "/v1/models/..%5Cfiles",
  "/v1/models/..\\files",
  "/v1/models/.",
];

describe("GET /v1/models/… never leaves the provider's /models", () => {
  let upstream: Awaited<ReturnType<typeof scriptedServer>>;
  let h: Harness;
  beforeAll(async () => {
    upstream = await scriptedServer([json(200, { object: "model", id: "m" })]);
    h = await startHarness({ authToken: "proxy-token", baseURL: upstream.url });
  });
  afterAll(async () => {
    await h.close();
    await upstream.close();
  });

  it("refuses `.`/`..` segments in every spelling with 400 invalid_path, sending nothing upstream", async () => {
    for (const path of TRAVERSALS) {
      const r = await rawGet(h.proxy.origin, path);
      expect(r.status, path).toBe(400);
      expect(r.body.error, path).toMatchObject({ type: "invalid_request_error", code: "invalid_path" });
    }
    expect(upstream.seen).toEqual([]);
  });

  it("still passes model ids through, with or without slashes", async () => {
    const client = new OpenAI({ apiKey: "proxy-token", baseURL: h.proxy.baseURL, maxRetries: 0 });
    upstream.seen.length = 0;
    for (const path of ["/v1/models/some-model", "/v1/models/org/model", "/v1/models/..ok"]) {
      expect((await rawGet(h.proxy.origin, path)).status, path).toBe(200);
    }
    // openai-node sends `org/model` as one segment, `org%2Fmodel`.
    expect(await client.models.retrieve("meta-llama/Llama-3")).toMatchObject({ id: "m" });
    expect(upstream.seen.map((s) => s.url)).toEqual([
      "/v1/models/some-model",
      "/v1/models/org/model",
      "/v1/models/..ok",
      "/v1/models/meta-llama%2FLlama-3",
    ]);
    expect(upstream.seen.every((s) => s.headers.authorization === `Bearer ${UPSTREAM_KEY}`)).toBe(true);
  });
});

describe("against the emulator, as the traversal was first shown", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ authToken: "proxy-token" });
  });
  afterAll(() => h.close());

  it("lists no files or batches and reaches no admin route", async () => {
    for (const path of TRAVERSALS) expect((await rawGet(h.proxy.origin, path)).status, path).toBe(400);
    expect(Object.keys(h.emulator.counters.requests).filter((k) => k.startsWith("GET"))).toEqual([]);
  });

  it("answers a failed line whose status is not an HTTP error status with 502, and keeps serving", async () => {
    for (const status of [100, 302, 999]) {
      const res = await request(`${h.proxy.origin}/v1/chat/completions`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `[[status:${status}]]` }] }),
      });
      expect(res.statusCode, String(status)).toBe(502);
      expect(((await res.body.json()) as any).error.message, String(status)).toMatch(/\S/);
    }
    const health = await request(`${h.proxy.origin}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });
});

describe("passthroughModels", () => {
  it("refuses, before any request, a path that does not resolve below <base>/models", async () => {
    const upstream = await scriptedServer([json(200, {})]);
    const transport = new Transport(resolveOptions({ apiKey: UPSTREAM_KEY, baseURL: upstream.url }), realClock);
    try {
      for (const path of [
        "/files",
        "/models/../files",
        "/models/%2e%2e/batches",
        "/models/./../files",
        "/modelsx",
        "//evil.test/models",
        "models",
      ]) {
        await expect(passthroughModels(transport, path), path).rejects.toThrow(TypeError);
      }
      expect(upstream.seen).toEqual([]);
      const reply = await passthroughModels(transport, "/models/m", { limit: "1" });
      expect([reply.status, upstream.seen[0]!.url]).toEqual([200, "/v1/models/m?limit=1"]);
    } finally {
      await transport.close();
      await upstream.close();
    }
  });

  it("hands a non-2xx answer back, the key redacted", async () => {
    const upstream = await scriptedServer([
      json(404, { error: { message: `no model for ${UPSTREAM_KEY}` } }, { "x-request-id": "req_9" }),
    ]);
    const transport = new Transport(resolveOptions({ apiKey: UPSTREAM_KEY, baseURL: upstream.url }), realClock);
    try {
      const reply = await passthroughModels(transport, "/models");
      expect([reply.status, reply.headers.get("x-request-id")]).toEqual([404, "req_9"]);
      expect(reply.body).toContain("[redacted]");
      expect(reply.body).not.toContain(UPSTREAM_KEY);
      expect(upstream.seen).toHaveLength(1);
    } finally {
      await transport.close();
      await upstream.close();
    }
  });
});
