import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseErrorBody } from "../../src/internal/error-body.js";
import { retryDelay } from "../../src/internal/retry.js";
import { Transport } from "../../src/internal/transport.js";
import { resolveOptions } from "../../src/options-resolve.js";
import { realClock } from "../../src/internal/clock.js";
import {
  APIConnectionError,
  APIError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  RateLimitError,
} from "../../src/errors.js";
import { json, reset, scriptedServer, text } from "../helpers/server.js";

const KEY = "sk-test-secret-key-123";
const ok = z.looseObject({ ok: z.boolean() });
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function transportFor(handlers: Parameters<typeof scriptedServer>[0], extra: Record<string, unknown> = {}) {
  const server = await scriptedServer(handlers);
  const t = new Transport(resolveOptions({ apiKey: KEY, baseURL: server.url, ...extra }), realClock);
  close = async () => {
    await t.close();
    await server.close();
  };
  return { server, t };
}

describe("Transport", () => {
  it("retries 429 honouring retry-after-ms, then 503, then succeeds", async () => {
    const { server, t } = await transportFor([
      json(429, { error: { message: "slow down" } }, { "retry-after-ms": "5" }),
      json(503, { error: "service_unavailable", message: "busy", retry_after_seconds: 30 }, { "retry-after": "0" }),
      json(200, { ok: true }),
    ]);
    await expect(t.json({ method: "GET", path: "/batches/x" }, ok)).resolves.toEqual({ ok: true });
    expect(server.seen.map((s) => s.url)).toEqual(["/v1/batches/x", "/v1/batches/x", "/v1/batches/x"]);
  });

  it("retries a connection reset", async () => {
    const { server, t } = await transportFor([reset, json(200, { ok: true })]);
    await expect(t.json({ method: "GET", path: "/a" }, ok)).resolves.toEqual({ ok: true });
    expect(server.seen).toHaveLength(2);
  });

  it("does not retry 400, nor a 503 marked x-should-retry: false", async () => {
    let { server, t } = await transportFor([text(400, "Line 3: Missing 'model' field")]);
    const err = await t.json({ method: "POST", path: "/files", json: {} }, ok).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as APIError).message).toBe("400 POST /files: Line 3: Missing 'model' field");
    expect(server.seen).toHaveLength(1);
    await close!();
    ({ server, t } = await transportFor([
      json(503, { error: { message: "no" } }, { "x-should-retry": "false", "retry-after": "0" }),
    ]));
    await expect(t.json({ method: "GET", path: "/a" }, ok)).rejects.toBeInstanceOf(InternalServerError);
    expect(server.seen).toHaveLength(1);
  });

  it("stops after maxRetries", async () => {
    const { server, t } = await transportFor(
      [json(500, { error: { message: "boom", type: "server_error" } }, { "retry-after": "0" })],
      { maxRetries: 2 },
    );
    const err = (await t.json({ method: "GET", path: "/a" }, ok).catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(InternalServerError);
    expect(err.message).toBe("500 boom");
    expect(err.type).toBe("server_error");
    expect(server.seen).toHaveLength(3);
  });

  it("gives up when the retry-after would pass the retry deadline", async () => {
    const { server, t } = await transportFor([json(429, { error: { message: "later" } }, { "retry-after": "3600" })], {
      retryDeadlineMs: 1_000,
    });
    await expect(t.json({ method: "GET", path: "/a" }, ok)).rejects.toBeInstanceOf(RateLimitError);
    expect(server.seen).toHaveLength(1);
  });

  it("sends the key, organization, project and default headers to the base URL only", async () => {
    const { server, t } = await transportFor([json(200, { ok: true })], {
      organization: "org",
      project: "proj",
      defaultHeaders: { "x-extra": "1" },
    });
    await t.json({ method: "GET", path: "/a", query: { skip: 3 } }, ok);
    expect(server.seen[0]!.url).toBe("/v1/a?skip=3");
    expect(server.seen[0]!.headers).toMatchObject({
      authorization: `Bearer ${KEY}`,
      "openai-organization": "org",
      "openai-project": "proj",
      "x-extra": "1",
    });
    expect(() => t.url({ path: "//evil.example/x" })).toThrow(/not a relative path/);
    expect(() => t.url({ path: "http://evil.example/x" })).toThrow(/not a relative path/);
  });

  it("does not follow a redirect to another origin", async () => {
    const { server, t } = await transportFor([
      (_req, res) => res.writeHead(302, { location: "http://127.0.0.2:1/steal" }).end(),
    ]);
    const err = (await t.json({ method: "GET", path: "/a" }, ok).catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(APIError);
    expect(err.status).toBe(302);
    expect(server.seen).toHaveLength(1);
  });

  it("redacts the key if a server echoes it, and quotes long bodies truncated", async () => {
    const { t } = await transportFor([text(401, `bad key ${KEY} ${"x".repeat(5_000)}`)]);
    const err = (await t.json({ method: "GET", path: "/a" }, ok).catch((e: unknown) => e)) as APIError;
    expect(err.message).not.toContain(KEY);
    expect(err.message).toContain("[redacted]");
    expect(err.message.length).toBeLessThan(1_200);
  });

  it("redacts the key from a 2xx non-JSON body and before truncating, so no part of it survives a cut", async () => {
    const { t } = await transportFor(
      [text(200, `<html>proxy saw Bearer ${KEY}</html>`), text(500, `${"x".repeat(995)}${KEY}`)],
      { maxRetries: 0 },
    );
    const first = (await t.json({ method: "GET", path: "/a" }, ok).catch((e: unknown) => e)) as Error;
    expect(first.message).toContain("proxy saw Bearer [redacted]");
    const second = (await t.json({ method: "GET", path: "/a" }, ok).catch((e: unknown) => e)) as Error;
    expect(second.message).not.toContain(KEY.slice(0, 7));
  });

  it("reports a non-JSON or wrongly shaped 2xx body clearly", async () => {
    const { t } = await transportFor([text(200, "<html>"), json(200, { nope: 1 })], { maxRetries: 0 });
    await expect(t.json({ method: "GET", path: "/a" }, ok)).rejects.toThrow(/GET \/a: response is not JSON: <html>/);
    await expect(t.json({ method: "GET", path: "/a" }, ok)).rejects.toThrow(/GET \/a: unexpected response shape: ok:/);
  });

  it("uploads a file as multipart/form-data from its parts, and sends the same bytes again on a retry", async () => {
    const { server, t } = await transportFor([
      json(503, { error: { message: "busy" } }, { "retry-after": "0" }),
      json(200, { ok: true }),
    ]);
    const parts = [Buffer.from('{"a":"é"}\n{"b"'), Buffer.from(":2}\n")];
    const upload = {
      fields: { purpose: "batch" },
      filename: 'odd"name\r\n.jsonl',
      contentType: "application/jsonl",
      parts,
    };
    await expect(t.json({ method: "POST", path: "/files", upload }, ok)).resolves.toEqual({ ok: true });
    expect(server.seen).toHaveLength(2);
    for (const sent of server.seen) {
      expect(Number(sent.headers["content-length"])).toBe(Buffer.byteLength(sent.body));
      // Parsed by a standard multipart reader, as a provider would.
      const form = await new Response(sent.body, {
        headers: { "content-type": sent.headers["content-type"]! },
      }).formData();
      expect(form.get("purpose")).toBe("batch");
      const file = form.get("file") as File;
      expect(file.name).toBe(upload.filename);
      expect(file.type).toBe("application/jsonl");
      expect(await file.text()).toBe('{"a":"é"}\n{"b":2}\n');
    }
  });

  it("maps a refused connection to APIConnectionError", async () => {
    const t = new Transport(
      resolveOptions({ apiKey: KEY, baseURL: "http://127.0.0.1:1/v1", maxRetries: 0 }),
      realClock,
    );
    await expect(t.json({ method: "GET", path: "/a" }, ok)).rejects.toBeInstanceOf(APIConnectionError);
    await t.close();
  });
});

describe("error bodies", () => {
  it("reads OpenAI, Doubleword JSON and plain-text shapes", () => {
    expect(parseErrorBody('{"error":{"message":"m","type":"t","param":"p","code":"c"}}').error).toMatchObject({
      message: "m",
      type: "t",
      param: "p",
      code: "c",
    });
    expect(
      parseErrorBody('{"error":"too_many_requests","message":"wait","retry_after_seconds":30}').error,
    ).toMatchObject({ message: "wait", code: "too_many_requests" });
    expect(parseErrorBody("File with ID x not found")).toEqual({ message: "File with ID x not found" });
  });

  it("retry delays follow headers, then backoff; final statuses give none", () => {
    const err = (status: number, headers: Record<string, string> = {}) =>
      new APIError(status, undefined, "x", new Headers(headers));
    expect(retryDelay(err(429, { "retry-after": "2" }), 0)).toBe(2_000);
    expect(retryDelay(err(429, { "retry-after-ms": "150" }), 0)).toBe(150);
    const date = new Date(Date.now() + 10_000).toUTCString();
    expect(retryDelay(err(503, { "retry-after": date }), 0)).toBeGreaterThan(5_000);
    expect(
      retryDelay(err(503, { "retry-after": "Thu, 01 Jan 2026 00:00:30 GMT" }), 0, Date.parse("2026-01-01T00:00:00Z")),
    ).toBe(30_000);
    expect(retryDelay(err(400), 0)).toBeUndefined();
    expect(retryDelay(err(400, { "x-should-retry": "true" }), 0)).toBeGreaterThan(0);
    expect(retryDelay(err(404), 0)).toBeUndefined();
    const b = retryDelay(err(500), 3)!;
    expect(b).toBeGreaterThanOrEqual(3_000);
    expect(b).toBeLessThanOrEqual(4_000);
    expect(retryDelay(new NotFoundError(404, undefined, "x"), 0)).toBeUndefined();
  });
});
