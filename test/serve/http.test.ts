// `serve` over plain HTTP (undici): routing, body checks, auth, health, models passthrough, disconnects, idempotency.
import { request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { json, scriptedServer } from "../helpers/server.js";
import { waitFor } from "../helpers/client.js";
import { startHarness, UPSTREAM_KEY, type Harness } from "../helpers/serve-harness.js";

const chatBody = (content: string) => JSON.stringify({ model: "m", messages: [{ role: "user", content }] });
const JSON_HEADERS = { "content-type": "application/json" };

async function post(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = JSON_HEADERS,
  signal?: AbortSignal,
) {
  const res = await request(`${base}${path}`, { method: "POST", headers, body, signal });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as any };
}

describe("routing and request checks", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ maxBodyBytes: 2_000 });
  });
  afterAll(() => h.close());

  it("answers invalid JSON with 400 in OpenAI's error shape", async () => {
    const r = await post(h.proxy.origin, "/v1/chat/completions", "{not json");
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_json",
      param: null,
      message: expect.stringContaining("JSON"),
    });
    expect(r.headers["x-should-retry"]).toBe("false");
    const arr = await post(h.proxy.origin, "/v1/chat/completions", "[1,2]");
    expect(arr.status).toBe(400);
  });

  it("answers a non-JSON content type with 415", async () => {
    const r = await post(h.proxy.origin, "/v1/chat/completions", "model=m", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(r.status).toBe(415);
    expect(r.body.error.code).toBe("unsupported_media_type");
  });

  it("answers a wrong method with 405 and Allow", async () => {
    const res = await request(`${h.proxy.origin}/v1/chat/completions`, { method: "GET" });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe("POST");
    expect(((await res.body.json()) as any).error.message).toContain("GET");
  });

  it("answers an unknown route with a clear 404, hinting at a missing /v1", async () => {
    const r = await post(h.proxy.origin, "/v1/completions", chatBody("x"));
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ type: "invalid_request_error", code: "unknown_url" });
    const bare = await post(h.proxy.origin, "/chat/completions", chatBody("x"));
    expect(bare.status).toBe(404);
    expect(bare.body.error.message).toContain("/v1/chat/completions");
  });

  it("routes despite a query string and a trailing slash", async () => {
    const r = await post(h.proxy.origin, "/v1/chat/completions/?api-version=2024-01-01", chatBody("routed"));
    expect(r.status).toBe(200);
    expect(r.body.choices[0].message.content).toBe("echo: routed");
    const health = await request(`${h.proxy.origin}/health/?probe=1`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });

  it("answers a body over the limit with 413, by Content-Length or by bytes read", async () => {
    const big = chatBody("x".repeat(5_000));
    const r = await post(h.proxy.origin, "/v1/chat/completions", big);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe("request_too_large");
    async function* chunked() {
      for (let i = 0; i < 5; i++) yield Buffer.from("x".repeat(1_000));
    }
    const res = await request(`${h.proxy.origin}/v1/chat/completions`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: chunked() as never,
    });
    expect(res.statusCode).toBe(413);
    await res.body.dump();
  });

  it("reports health with the core's counters", async () => {
    const res = await request(`${h.proxy.origin}/health`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ status: "ok", pending: 0, buffered: 0 });
  });

  it("logs startup settings without the key", () => {
    const start = h.logs.find((l) => l.event === "serve.listening");
    expect(start).toMatchObject({
      level: "info",
      url: h.proxy.origin,
      batchWindowMs: 10,
      maxBodyBytes: 2_000,
      auth: false,
    });
    expect(JSON.stringify(h.logs)).not.toContain(UPSTREAM_KEY);
    expect(h.logs.some((l) => l.event === "request" && l.status === 413)).toBe(true);
  });
});

describe("batch-level failures", () => {
  let h: Harness;
  beforeAll(async () => {
    // Without line retries, a batch_expired line reaches the caller (with them it goes into a later batch).
    h = await startHarness({ lineRetries: 0 }, { flavor: "openai" });
  });
  afterAll(() => h.close());

  it("answers 502 with x-should-retry: false when the batch ends without the call's line", async () => {
    const r = await post(h.proxy.origin, "/v1/chat/completions", chatBody("[[drop]]"));
    expect(r.status).toBe(502);
    expect(r.headers["x-should-retry"]).toBe("false");
    expect(r.body.error).toMatchObject({ type: "server_error", code: "batch_completed" });
  });

  it("answers 504 when the batch expires before the call ran", async () => {
    const pending = post(h.proxy.origin, "/v1/chat/completions", chatBody("slow [[latency:60000]]"));
    await waitFor(
      () =>
        h.logs.some(
          (l) =>
            l.event === "batch.submitted" &&
            l.calls === 1 &&
            !h.logs.some((d) => d.event === "batch.done" && d.batchId === l.batchId),
        ),
      "batch submitted",
    );
    const submitted = h.logs.filter((l) => l.event === "batch.submitted").at(-1)!;
    h.emulator.expireNow(submitted.batchId as string);
    const r = await pending;
    expect(r.status).toBe(504);
    expect(r.headers["x-should-retry"]).toBe("false");
    expect(r.body.error.code).toBe("batch_expired");
  });
});

describe("auth token", () => {
  let h: Harness;
  let upstream: Awaited<ReturnType<typeof scriptedServer>>;
  beforeAll(async () => {
    upstream = await scriptedServer([
      json(200, { object: "list", data: [{ id: "m", object: "model", created: 0, owned_by: "x" }] }),
    ]);
    h = await startHarness({ authToken: "proxy-token", baseURL: upstream.url });
  });
  afterAll(async () => {
    await h.close();
    await upstream.close();
  });

  it("refuses requests without the token or with a wrong one, with 401", async () => {
    for (const headers of [JSON_HEADERS, { ...JSON_HEADERS, authorization: "Bearer wrong" }]) {
      const r = await post(h.proxy.origin, "/v1/chat/completions", chatBody("x"), headers);
      expect(r.status).toBe(401);
      expect(r.body.error).toMatchObject({ code: "invalid_api_key", type: "authentication_error" });
      expect(JSON.stringify(r.body)).not.toContain("proxy-token");
    }
    expect(h.proxy.stats.pending).toBe(0);
  });

  it("lets the right token through and leaves /health open", async () => {
    const res = await request(`${h.proxy.origin}/v1/models`, { headers: { authorization: "Bearer proxy-token" } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const health = await request(`${h.proxy.origin}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    expect(JSON.stringify(h.logs)).not.toContain("proxy-token");
  });
});

describe("GET /v1/models passthrough", () => {
  let h: Harness;
  let upstream: Awaited<ReturnType<typeof scriptedServer>>;
  beforeAll(async () => {
    upstream = await scriptedServer([
      json(
        200,
        { object: "list", data: [{ id: "m", object: "model", created: 0, owned_by: "x" }] },
        { "x-request-id": "req_1" },
      ),
      json(401, {
        error: {
          message: `Incorrect API key provided: ${UPSTREAM_KEY}`,
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      }),
    ]);
    h = await startHarness({ baseURL: upstream.url });
  });
  afterAll(async () => {
    await h.close();
    await upstream.close();
  });

  it("forwards to the upstream with the upstream key, not the client's", async () => {
    const res = await request(`${h.proxy.origin}/v1/models/?limit=5`, {
      headers: { authorization: "Bearer client-key" },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-request-id"]).toBe("req_1");
    expect(await res.body.json()).toMatchObject({ object: "list", data: [{ id: "m" }] });
    expect(upstream.seen[0]).toMatchObject({ method: "GET", url: "/v1/models?limit=5" });
    expect(upstream.seen[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });

  it("passes the upstream's error status through, with the key redacted", async () => {
    const res = await request(`${h.proxy.origin}/v1/models/gpt-x`);
    expect(res.statusCode).toBe(401);
    const text = await res.body.text();
    expect(text).not.toContain(UPSTREAM_KEY);
    expect(JSON.parse(text).error.code).toBe("invalid_api_key");
    expect(upstream.seen[1]!.url).toBe("/v1/models/gpt-x");
  });
});

describe("client disconnects and Idempotency-Key", () => {
  // A long window keeps calls in the buffer until the test decides; close() flushes them.
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("releases the call of a client that disconnects before its result: nothing is uploaded", async () => {
    h = await startHarness({ batchWindowMs: 60_000 });
    const controller = new AbortController();
    const pending = post(
      h.proxy.origin,
      "/v1/chat/completions",
      chatBody("gone"),
      JSON_HEADERS,
      controller.signal,
    ).catch((e: unknown) => e);
    await waitFor(() => h!.proxy.stats.buffered === 1, "call buffered");
    controller.abort();
    await pending;
    await waitFor(() => h!.proxy.stats.pending === 0, "call released");
    expect(h.proxy.stats.buffered).toBe(0);
    await h.proxy.close();
    expect(h.emulator.counters.filesUploaded).toBe(0);
    expect(h.logs.some((l) => l.event === "request.aborted")).toBe(true);
  });

  it("releases a call waiting in a running batch when its client disconnects, and frees its waiting slot", async () => {
    h = await startHarness({ batchWindowMs: 20 });
    const controller = new AbortController();
    const pending = post(
      h.proxy.origin,
      "/v1/chat/completions",
      chatBody("gone later [[latency:600000]]"),
      JSON_HEADERS,
      controller.signal,
    ).catch((e: unknown) => e);
    await waitFor(() => h!.proxy.stats.runningBatches === 1 && h!.proxy.stats.pending === 1, "call in a running batch");
    controller.abort();
    await pending;
    await waitFor(() => h!.proxy.stats.pending === 0, "call released");
    const health = await request(`${h.proxy.origin}/health`);
    expect(((await health.body.json()) as any).waitingRequests).toBe(0);
    expect(h.logs.filter((l) => l.event === "request.aborted")).toHaveLength(1);
  });

  it("attaches concurrent requests with the same key to one call: one batch line", async () => {
    h = await startHarness({ batchWindowMs: 20 });
    const headers = { ...JSON_HEADERS, "idempotency-key": "k-1" };
    const [a, b] = await Promise.all([
      post(h.proxy.origin, "/v1/chat/completions", chatBody("once"), headers),
      post(h.proxy.origin, "/v1/chat/completions", chatBody("once"), headers),
    ]);
    expect(a.status).toBe(200);
    expect(b.body).toEqual(a.body);
    expect(h.emulator.counters.linesExecuted).toBe(1);
    expect(h.emulator.counters.batchesCreated).toBe(1);
    // A retry after the answer replays it.
    const c = await post(h.proxy.origin, "/v1/chat/completions", chatBody("once"), headers);
    expect(c.body).toEqual(a.body);
    expect(c.headers["idempotent-replayed"]).toBe("true");
    expect(h.emulator.counters.linesExecuted).toBe(1);
    // The same key for another body is refused rather than answered with the wrong result.
    const d = await post(h.proxy.origin, "/v1/chat/completions", chatBody("different"), headers);
    expect(d.status).toBe(422);
    expect(d.body.error.code).toBe("idempotency_key_reused");
  });

  it("takes the same body with its keys in another order (and other whitespace) as the same call, not a 422", async () => {
    h = await startHarness({ batchWindowMs: 10 });
    const headers = { ...JSON_HEADERS, "idempotency-key": "k-order" };
    const body = { model: "test-model", temperature: 0, messages: [{ role: "user", content: "same" }] };
    const a = await post(h.proxy.origin, "/v1/chat/completions", JSON.stringify(body), headers);
    const reordered = `{ "messages": [ {"content": "same", "role": "user"} ], "temperature": 0, "model": "test-model" }`;
    const b = await post(h.proxy.origin, "/v1/chat/completions", reordered, headers);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.headers["idempotent-replayed"]).toBe("true");
    expect(h.emulator.counters.linesExecuted).toBe(1);
  });

  it("keeps a keyed call another waiter still wants when one waiter disconnects", async () => {
    h = await startHarness({ batchWindowMs: 60_000, idempotencyTtlMs: 20 });
    const headers = { ...JSON_HEADERS, "idempotency-key": "k-2" };
    const controller = new AbortController();
    const first = post(h.proxy.origin, "/v1/chat/completions", chatBody("shared"), headers, controller.signal).catch(
      (e: unknown) => e,
    );
    await waitFor(() => h!.proxy.stats.buffered === 1, "call buffered");
    const second = post(h.proxy.origin, "/v1/chat/completions", chatBody("shared"), headers);
    await waitFor(() => h!.logs.some((l) => l.event === "request.deduplicated"), "second attached");
    controller.abort();
    await first;
    await waitFor(() => h!.logs.some((l) => l.event === "request.aborted"), "first aborted");
    // Longer than the TTL: had the call been orphaned, its abandonment timer would have released it by now.
    await new Promise((r) => setTimeout(r, 60));
    expect(h.proxy.stats.buffered).toBe(1);
    void h.proxy.close();
    const r = await second;
    expect(r.status).toBe(200);
    expect(r.body.choices[0].message.content).toBe("echo: shared");
    expect(h.emulator.counters.linesExecuted).toBe(1);
  });

  it("lets a retry with the key re-attach to a call whose client went away", async () => {
    h = await startHarness({ batchWindowMs: 60_000, idempotencyTtlMs: 60_000 });
    const headers = { ...JSON_HEADERS, "idempotency-key": "k-3" };
    const controller = new AbortController();
    const first = post(h.proxy.origin, "/v1/chat/completions", chatBody("retried"), headers, controller.signal).catch(
      (e: unknown) => e,
    );
    await waitFor(() => h!.proxy.stats.buffered === 1, "call buffered");
    controller.abort();
    await first;
    await waitFor(() => h!.logs.some((l) => l.event === "request.aborted"), "first aborted");
    expect(h.proxy.stats.buffered).toBe(1);
    const retry = post(h.proxy.origin, "/v1/chat/completions", chatBody("retried"), headers);
    await waitFor(() => h!.logs.some((l) => l.event === "request.deduplicated"), "retry attached");
    void h.proxy.close();
    const r = await retry;
    expect(r.status).toBe(200);
    expect(r.headers["idempotent-replayed"]).toBe("true");
    expect(h.emulator.counters.linesExecuted).toBe(1);
  });

  it("releases a keyed call whose clients are gone once the TTL passes without a retry", async () => {
    h = await startHarness({ batchWindowMs: 60_000, idempotencyTtlMs: 20 });
    const controller = new AbortController();
    const first = post(
      h.proxy.origin,
      "/v1/chat/completions",
      chatBody("abandoned"),
      { ...JSON_HEADERS, "idempotency-key": "k-4" },
      controller.signal,
    ).catch((e: unknown) => e);
    await waitFor(() => h!.proxy.stats.buffered === 1, "call buffered");
    controller.abort();
    await first;
    await waitFor(() => h!.proxy.stats.pending === 0, "call released");
    await h.proxy.close();
    expect(h.emulator.counters.filesUploaded).toBe(0);
  });
});

describe("shutdown", () => {
  it("waits for running calls up to the deadline, then cancels them upstream and answers 503", async () => {
    const h = await startHarness();
    const stuck = post(h.proxy.origin, "/v1/chat/completions", chatBody("slow [[latency:60000]]"));
    await waitFor(() => h.logs.some((l) => l.event === "batch.submitted"), "batch submitted");
    await h.proxy.close({ timeoutMs: 20 });
    const r = await stuck;
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe("shutting_down");
    expect(h.logs.map((l) => l.event)).toEqual(
      expect.arrayContaining(["serve.closing", "serve.shutdown_timeout", "serve.closed"]),
    );
    expect(h.emulator.counters.requests["POST /v1/batches/:id/cancel"]).toBe(1);
    await h.close();
  });
});
