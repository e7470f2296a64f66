import { afterEach, describe, expect, it } from "vitest";
import { realClock } from "../../src/internal/clock.js";
import { Transport } from "../../src/internal/transport.js";
import { readNewLines, type FileCursor } from "../../src/core/results.js";
import { SLICE } from "../../src/core/turns.js";
import { resolveOptions } from "../../src/options-resolve.js";
import { json, scriptedServer, type Handler } from "../helpers/server.js";

const KEY = "sk-results-test-key-12345";
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function reader(handlers: Handler[], each?: () => void) {
  const server = await scriptedServer(handlers);
  const t = new Transport(resolveOptions({ apiKey: KEY, baseURL: server.url, maxRetries: 0 }), realClock);
  close = async () => {
    await t.close();
    await server.close();
  };
  const stats = { requests: 0, bytes: 0, lines: 0 };
  const got: string[] = [];
  const read = (cursor: FileCursor) =>
    readNewLines(
      t,
      cursor,
      (l) => {
        each?.();
        got.push(l);
      },
      stats,
    );
  return { server, read, got, stats };
}

const body =
  (text: string, headers: Record<string, string> = {}): Handler =>
  (_req, res) =>
    res.writeHead(200, { "content-type": "application/x-ndjson", ...headers }).end(text);
const line = (n: number) => JSON.stringify({ custom_id: `c${n}`, response: { status_code: 200, body: {} } });

describe("readNewLines", () => {
  it("asks from the cursor on (skip and offset) and reports the cursor past the lines received", async () => {
    const { server, read, got, stats } = await reader([body(`${line(0)}\n${line(1)}\n`), body(`${line(2)}\n`)]);
    const first = await read({ fileId: "out", next: 0 });
    expect(first).toMatchObject({ next: 2, lines: 2, incomplete: undefined });
    expect(first.cut).toBeUndefined();
    const second = await read({ fileId: "out", next: first.next });
    expect(second.next).toBe(3);
    expect(server.seen.map((s) => s.url)).toEqual(["/v1/files/out/content", "/v1/files/out/content?skip=2&offset=2"]);
    expect(got).toEqual([line(0), line(1), line(2)]);
    expect(stats).toMatchObject({ requests: 2, lines: 3 });
  });

  it("does not move the cursor it is given", async () => {
    const { read } = await reader([body(`${line(0)}\n`)]);
    const cursor = { fileId: "out", next: 0 };
    await read(cursor);
    expect(cursor.next).toBe(0);
  });

  it("X-Last-Line caps the cursor below the lines received", async () => {
    const { read, got } = await reader([body(`${line(0)}\n${line(1)}\n${line(2)}\n`, { "x-last-line": "2" })]);
    const out = await read({ fileId: "out", next: 0 });
    expect(out.next).toBe(2);
    expect(got).toHaveLength(3);
  });

  it("an X-Last-Line below the cursor is ignored rather than pinning it", async () => {
    const { read } = await reader([body(`${line(5)}\n${line(6)}\n`, { "x-last-line": "1" })]);
    const out = await read({ fileId: "out", next: 5 });
    expect(out.next).toBe(7);
    expect(out.cut).toBeUndefined();
  });

  it("reports X-Incomplete true, false, or absent", async () => {
    const { read } = await reader([
      body("", { "x-incomplete": "true" }),
      body("", { "x-incomplete": "False" }),
      body(""),
    ]);
    expect((await read({ fileId: "f", next: 0 })).incomplete).toBe(true);
    expect((await read({ fileId: "f", next: 0 })).incomplete).toBe(false);
    expect((await read({ fileId: "f", next: 0 })).incomplete).toBeUndefined();
  });

  it("an unterminated last line counts when it parses, and is a cut when it does not", async () => {
    const { read, got } = await reader([body(`${line(0)}\n${line(1)}`), body(`${line(0)}\n${line(1).slice(0, 20)}`)]);
    const whole = await read({ fileId: "f", next: 0 });
    expect(whole).toMatchObject({ next: 2, lines: 2 });
    expect(whole.cut).toBeUndefined();
    const cut = await read({ fileId: "f", next: 5 });
    expect(cut.next).toBe(6);
    expect(cut.cut?.message).toMatch(/response ended after 1 complete lines \(of \?\); resuming at line 6/);
    expect(got).toEqual([line(0), line(1), line(0)]);
  });

  it("fewer lines than X-Last-Line promised is a cut, with the cursor past those received", async () => {
    const { read } = await reader([body(`${line(3)}\n`, { "x-last-line": "6" })]);
    const out = await read({ fileId: "f", next: 3 });
    expect(out.next).toBe(4);
    expect(out.cut?.message).toMatch(/after 1 complete lines \(of 3\)/);
  });

  it("a connection dropped mid-body is a cut after the whole lines received", async () => {
    const { read, got } = await reader([
      (_req, res) => {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write(`${line(0)}\n${line(1)}\n${line(2).slice(0, 10)}`);
        setImmediate(() => res.socket?.destroy());
      },
    ]);
    const out = await read({ fileId: "f", next: 0 });
    expect(out.next).toBe(2);
    expect(out.cut).toBeDefined();
    expect(got).toEqual([line(0), line(1)]);
  });

  it("gives the event loop a turn every SLICE lines read, counted over all reads at once", async () => {
    const pad = "x".repeat(100);
    const big = (n: number) => JSON.stringify({ custom_id: `c${n}`, response: { status_code: 200, body: { pad } } });
    const n = 20_000;
    const file = body(Array.from({ length: n }, (_, i) => `${big(i)}\n`).join(""));
    // The first line blocks the thread long enough for both responses to arrive and wait in buffers. The reads'
    // chunks are as the runtime cuts them: each line notes the longest run of lines one chunk gave.
    let blocked = false;
    let chunkBytes = -1;
    let inChunk = 0;
    let chunkMost = 0;
    const each = () => {
      if (stats.bytes !== chunkBytes) [chunkBytes, inChunk] = [stats.bytes, 0];
      chunkMost = Math.max(chunkMost, ++inChunk);
      if (blocked) return;
      blocked = true;
      const until = Date.now() + 300;
      while (Date.now() < until);
    };
    const { read, got, stats } = await reader([file, file], each);
    let most = 0;
    let last = 0;
    let going = true;
    const spin = () => {
      if (!going) return;
      most = Math.max(most, got.length - last);
      last = got.length;
      setImmediate(spin);
    };
    setImmediate(spin);
    const outs = await Promise.all([read({ fileId: "a", next: 0 }), read({ fileId: "b", next: 0 })]);
    going = false;
    for (const out of outs) expect(out).toMatchObject({ next: n, lines: n });
    expect(got).toHaveLength(2 * n);
    // A turn may see one more chunk's lines from each read past the budget (without it, Node 20 took 1,706 lines
    // in one turn, against a bound of 1,160 here).
    expect(most).toBeLessThanOrEqual(SLICE + 2 * chunkMost);
  });

  it("an HTTP error throws, naming the status", async () => {
    const { read } = await reader([json(404, { error: { message: "no such file" } })]);
    await expect(read({ fileId: "f", next: 0 })).rejects.toMatchObject({ status: 404 });
  });
});
