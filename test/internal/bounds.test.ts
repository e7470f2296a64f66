// Whatever the provider sends, the transport stays bounded in time and memory and never hands the key on.
import { createClock } from "@sinonjs/fake-timers";
import type http from "node:http";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { APIConnectionTimeoutError, APIError, AutoBatcher, InternalServerError } from "../../src/index.js";
import type { Clock } from "../../src/internal/clock.js";
import { LineSplitter } from "../../src/internal/jsonl.js";
import { Redactor } from "../../src/internal/redact.js";
import { Transport } from "../../src/internal/transport.js";
import { resolveOptions } from "../../src/options-resolve.js";
import { chat, rejection, waitFor } from "../helpers/client.js";
import { okLine } from "../helpers/provider.js";
import { scriptedProvider } from "../helpers/scripted-provider.js";
import { type Handler, json, scriptedServer } from "../helpers/server.js";

const KEY = "sk-bounds-secret-key-0123456789";
const any = z.unknown();
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function transportFor(handler: Handler, extra: Record<string, unknown> = {}, clock?: Clock) {
  const server = await scriptedServer([handler]);
  const fake = clock ?? createClock();
  const t = new Transport(resolveOptions({ apiKey: KEY, baseURL: server.url, maxRetries: 0, ...extra }), fake);
  close = async () => {
    await t.close();
    await server.close();
  };
  return { server, t };
}

/** Headers, then one byte every 10 ms of real time, forever (until the client goes away). */
function trickle(counter: { bytes: number }): Handler {
  return (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write("{");
    const timer = setInterval(() => {
      counter.bytes++;
      res.write(" ");
    }, 10);
    res.once("close", () => clearInterval(timer));
  };
}

/** A body of `bytes` bytes written as the client reads it; `outcome.sent` is what it took before it went away. */
function huge(status: number, bytes: number, outcome: { sent?: number }): Handler {
  return (_req, res: http.ServerResponse) => {
    res.writeHead(status, { "content-type": "application/json" });
    const chunk = Buffer.alloc(65_536, 0x20);
    let sent = 0;
    res.once("close", () => (outcome.sent = sent));
    const more = () => {
      while (sent < bytes && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
  };
}

describe("the key's redactor", () => {
  it("replaces the key in a byte stream wherever the chunks cut it", async () => {
    const text = `Incorrect API key provided: ${KEY}. Again: ${KEY}${KEY}!`;
    const expected = text.split(KEY).join("[redacted]");
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const out = await readAll(Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]).pipe(redactorStream()));
      expect(out).toBe(expected);
    }
    const oneByOne = Readable.from([...bytes].map((b) => Buffer.from([b])));
    expect(await readAll(oneByOne.pipe(redactorStream()))).toBe(expected);
  });
});

describe("Transport bounds", () => {
  it("redacts the key from 2xx JSON bodies, headers and error bodies before anything reads them", async () => {
    let n = 0;
    const { t } = await transportFor((_req, res) => {
      if (n++ === 0) return json(200, { note: `echo ${KEY}` }, { "x-echo": KEY })(_req, res);
      return json(401, { error: { message: `Incorrect API key provided: ${KEY}`, code: "invalid_api_key" } })(
        _req,
        res,
      );
    });
    expect(await t.json({ method: "GET", path: "/a" }, any)).toEqual({ note: "echo [redacted]" });
    const err = (await t.json({ method: "GET", path: "/b" }, any).catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(APIError);
    expect(JSON.stringify({ m: err.message, e: err.error })).not.toContain(KEY);
    const res = await t.send({ method: "GET", path: "/c" }, true);
    expect(res.headers.get("x-echo") ?? "").not.toContain(KEY);
    expect(await t.text({ method: "GET", path: "/c" }, res)).not.toContain(KEY);
  });

  it("a JSON body trickling a byte every few ms fails at requestDeadlineMs, however alive it looks", async () => {
    const clock = createClock();
    const counter = { bytes: 0 };
    const { t } = await transportFor(trickle(counter), { requestDeadlineMs: 3_000 }, clock);
    const outcome = t.json({ method: "GET", path: "/batches/b" }, any).catch((e: unknown) => e);
    await waitFor(() => counter.bytes >= 3, "the trickle to start");
    await clock.tickAsync(3_000);
    const err = await outcome;
    expect(err).toBeInstanceOf(APIConnectionTimeoutError);
    expect((err as Error).message).toMatch(/GET \/batches\/b: no complete answer within requestDeadlineMs \(3000 ms\)/);
  });

  it("a streamed body trickling forever fails its reader at requestDeadlineMs", async () => {
    const clock = createClock();
    const counter = { bytes: 0 };
    const { t } = await transportFor(trickle(counter), { requestDeadlineMs: 3_000 }, clock);
    const res = await t.stream({ method: "GET", path: "/files/f/content" });
    const read = readAll(res.body).catch((e: unknown) => e);
    await waitFor(() => counter.bytes >= 3, "the trickle to start");
    await clock.tickAsync(2_999);
    expect(counter.bytes).toBeGreaterThan(0);
    await clock.tickAsync(1);
    expect(await read).toBeInstanceOf(APIConnectionTimeoutError);
  });

  it("a 2xx JSON body over maxResponseBytes fails once with a clear error, is not retried, and is not read whole", async () => {
    const outcome: { sent?: number } = {};
    const { server, t } = await transportFor(huge(200, 50_000_000, outcome), {
      maxResponseBytes: 1_000_000,
      maxRetries: 5,
    });
    const err = (await t.json({ method: "GET", path: "/batches" }, any).catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(APIError);
    expect(err.message).toMatch(
      /GET \/batches: the provider's answer is larger than maxResponseBytes \(1000000 bytes\)/,
    );
    await waitFor(() => outcome.sent !== undefined, "the server to see the connection close");
    expect(outcome.sent).toBeLessThan(50_000_000);
    expect(server.seen).toHaveLength(1);
  });

  it("an error body is read only up to its cap: a 50 MB 500 body gives a short error", async () => {
    const outcome: { sent?: number } = {};
    const { t } = await transportFor(huge(500, 50_000_000, outcome));
    const err = (await t.json({ method: "GET", path: "/x" }, any).catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(InternalServerError);
    expect(err.message.length).toBeLessThan(1_200);
    await waitFor(() => outcome.sent !== undefined, "the server to see the connection close");
    expect(outcome.sent).toBeLessThan(50_000_000);
  });
});

describe("LineSplitter's line cap", () => {
  const collect = (chunks: string[], max: number) => {
    const s = new LineSplitter(max);
    const lines: string[] = [];
    for (const c of chunks) s.push(Buffer.from(c), (l) => lines.push(l));
    return { lines, rest: s.rest() };
  };
  const tooLarge = (id: string | null) => ({
    custom_id: id,
    response: null,
    error: {
      code: "result_line_too_large",
      message: "the provider's result line for this call is larger than maxResultLineBytes (100 bytes); it was skipped",
    },
  });

  it("hands an oversized line over as its call's error as soon as it crosses the cap, and skips the rest of it", () => {
    const big = `{"id":"r1","custom_id":"call-1","response":{"body":"${"x".repeat(500)}"}}`;
    const chunks = [big.slice(0, 60), big.slice(60, 300), `${big.slice(300)}\n{"custom_id":"call-2"}\n`];
    const { lines, rest } = collect(chunks, 100);
    expect(lines.map((l) => JSON.parse(l))).toEqual([tooLarge("call-1"), { custom_id: "call-2" }]);
    expect(rest).toBeUndefined();
  });

  it("counts the oversized line as read even when the stream ends inside it", () => {
    const s = new LineSplitter(100);
    const lines: string[] = [];
    s.push(Buffer.from(`{"custom_id":"c"}\n{"custom_id":"d","x":"${"y".repeat(300)}`), (l) => lines.push(l));
    expect(lines.map((l) => JSON.parse(l).custom_id)).toEqual(["c", "d"]);
    expect(s.rest()).toBeUndefined();
  });

  it("measures lines inside one chunk larger than the cap, and names no call when no custom_id shows", () => {
    const { lines } = collect([`{"custom_id":"a"}\n{"x":"${"z".repeat(200)}"}\n{"custom_id":"b"}\n`], 100);
    expect(lines.map((l) => JSON.parse(l))).toEqual([{ custom_id: "a" }, tooLarge(null), { custom_id: "b" }]);
  });
});

describe("the client under an oversized result line", () => {
  it("fails only the call whose line is too large, clearly, and downloads the file once", async () => {
    const server = await scriptedProvider({
      output: ([a, b]) => `${okLine(a!, "w".repeat(3_000_000))}\n${okLine(b!, "small")}\n`,
    });
    const client = new AutoBatcher({
      apiKey: KEY,
      baseURL: server.url,
      batchSize: 2,
      pollIntervalMs: 5,
      maxResultLineBytes: 1_000_000,
    });
    close = async () => {
      await client.close({ cancel: true });
      await server.close();
    };
    const big = rejection(client.chat.completions.create(chat("big")));
    const small = await client.chat.completions.create(chat("small"));
    const err = await big;
    expect(small.choices[0]!.message.content).toBe("small");
    expect(err).toBeInstanceOf(APIError);
    expect(err.code).toBe("result_line_too_large");
    expect(err.message).toMatch(/larger than maxResultLineBytes \(1000000 bytes\)/);
    expect(server.seen.filter((s) => s.url.startsWith("/v1/files/file-out/content"))).toHaveLength(1);
  });
});

function redactorStream() {
  return new Redactor(KEY).stream();
}

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}
