import { describe, expect, it } from "vitest";
import { createClock } from "@sinonjs/fake-timers";
import { CallBuffer, type Flushed } from "../../src/core/buffer.js";
import type { Call } from "../../src/core/call.js";
import type { Endpoint } from "../../src/internal/endpoints.js";
import { LINE_TAIL } from "../../src/internal/jsonl.js";

let seq = 0;
const lines = new Map<Call, string>();
function call(model = "m", bytes = 10, endpoint: Endpoint = "/v1/chat/completions"): Call {
  const c: Call = {
    customId: `c${seq++}`,
    endpoint,
    model,
    bytes,
    decodeBase64: false,
    raw: false,
    retries: 0,
    settled: false,
    resolve() {},
    reject() {},
  };
  lines.set(c, `${c.customId};`.padEnd(bytes - LINE_TAIL.length, "x") + LINE_TAIL);
  return c;
}
const fileOf = (f: Flushed) => Buffer.concat(f.parts).toString();

function setup(
  limits: Partial<{ batchSize: number; maxBatchBytes: number; batchWindowMs: number; maxBuffers: number }> = {},
) {
  const clock = createClock();
  const flushes: Flushed[] = [];
  const raw = new CallBuffer(
    { batchSize: 3, maxBatchBytes: 1_000, batchWindowMs: 1_000, maxBuffers: 100, ...limits },
    clock,
    (f) => flushes.push(f),
  );
  // The buffer writes head, body, then LINE_TAIL: split the test line accordingly.
  const add = (c: Call) => {
    const line = lines.get(c)!;
    const cut = Math.floor((line.length - LINE_TAIL.length) / 2);
    raw.add(c, line.slice(0, cut), line.slice(cut, -LINE_TAIL.length));
  };
  const buffer = {
    add,
    remove: (c: Call) => raw.remove(c),
    flushAll: raw.flushAll.bind(raw),
    get size() {
      return raw.size;
    },
  };
  return { clock, flushes, buffer, raw };
}

describe("CallBuffer", () => {
  it("flushes when batchSize calls are buffered, and starts a new file for the next call", () => {
    const { buffer, flushes } = setup();
    const calls = [call(), call(), call(), call()];
    calls.forEach((c) => buffer.add(c));
    expect(flushes).toHaveLength(1);
    expect(flushes[0]).toMatchObject({ reason: "size", model: "m", bytes: 30 });
    expect(flushes[0]!.calls).toEqual(calls.slice(0, 3));
    expect(fileOf(flushes[0]!)).toBe(
      calls
        .slice(0, 3)
        .map((c) => lines.get(c))
        .join(""),
    );
    expect(buffer.size).toBe(1);
  });

  it("flushes before a line would push the file past maxBatchBytes", () => {
    const { buffer, flushes } = setup({ batchSize: 100, maxBatchBytes: 100 });
    buffer.add(call("m", 40));
    buffer.add(call("m", 40));
    expect(flushes).toHaveLength(0);
    buffer.add(call("m", 30));
    expect(flushes).toHaveLength(1);
    expect(flushes[0]).toMatchObject({ reason: "bytes", bytes: 80 });
    expect(flushes[0]!.calls).toHaveLength(2);
    expect(buffer.size).toBe(1);
  });

  it("a file exactly at maxBatchBytes is not flushed early", () => {
    const { buffer, flushes } = setup({ batchSize: 100, maxBatchBytes: 100 });
    buffer.add(call("m", 50));
    buffer.add(call("m", 50));
    expect(flushes).toHaveLength(0);
  });

  it("flushes batchWindowMs after the first call, not extended by later calls", async () => {
    const { buffer, flushes, clock } = setup({ batchSize: 100 });
    buffer.add(call());
    await clock.tickAsync(600);
    buffer.add(call());
    await clock.tickAsync(399);
    expect(flushes).toHaveLength(0);
    await clock.tickAsync(1);
    expect(flushes).toHaveLength(1);
    expect(flushes[0]).toMatchObject({ reason: "time" });
    expect(flushes[0]!.calls).toHaveLength(2);
    expect(clock.countTimers()).toBe(0);
  });

  it("keeps one buffer per (endpoint, model)", async () => {
    const { buffer, flushes, clock } = setup({ batchSize: 2 });
    buffer.add(call("a"));
    buffer.add(call("b"));
    buffer.add(call("a", 10, "/v1/embeddings"));
    expect(flushes).toHaveLength(0);
    buffer.add(call("a"));
    expect(flushes).toHaveLength(1);
    expect(flushes[0]).toMatchObject({ endpoint: "/v1/chat/completions", model: "a" });
    await clock.tickAsync(1_000);
    expect(flushes.map((f) => `${f.endpoint} ${f.model}`).sort()).toEqual([
      "/v1/chat/completions a",
      "/v1/chat/completions b",
      "/v1/embeddings a",
    ]);
  });

  it("a removed (aborted) call is never flushed, and an emptied buffer flushes nothing", async () => {
    const { buffer, flushes, clock } = setup({ batchSize: 100 });
    const a = call();
    const b = call();
    buffer.add(a);
    buffer.add(b);
    expect(buffer.remove(a)).toBe(true);
    a.settled = true;
    await clock.tickAsync(1_000);
    expect(flushes[0]!.calls).toEqual([b]);
    expect(flushes[0]!.bytes).toBe(10);
    expect(fileOf(flushes[0]!)).toBe(lines.get(b));
    const c = call();
    buffer.add(c);
    buffer.remove(c);
    c.settled = true;
    await clock.tickAsync(1_000);
    expect(flushes).toHaveLength(1);
    expect(buffer.remove(b)).toBe(false);
  });

  it("writes lines across chunk boundaries in order, a line longer than a chunk in a chunk of its own", () => {
    const { buffer, flushes } = setup({ batchSize: 10, maxBatchBytes: 10_000_000 });
    const calls = [call("m", 700_000), call("m", 700_000), call("m", 1_500_000), call("m", 8)];
    calls.forEach((c) => buffer.add(c));
    buffer.flushAll("close");
    expect(flushes[0]!.parts.length).toBeGreaterThan(1);
    expect(fileOf(flushes[0]!)).toBe(calls.map((c) => lines.get(c)).join(""));
    // A flushed call keeps a view of its own line: it may be sent again in a later file.
    const own = (c: Call) => c.chunk!.subarray(c.offset!, c.offset! + c.bytes).toString();
    expect(calls.map(own)).toEqual(calls.map((c) => lines.get(c)));
  });

  it("opening a partition beyond maxBuffers flushes the oldest one first", () => {
    const { buffer, flushes, clock } = setup({ maxBuffers: 2 });
    const [a, b, c] = [call("a"), call("b"), call("c")];
    buffer.add(a);
    buffer.add(b);
    expect(flushes).toHaveLength(0);
    buffer.add(call("b"));
    expect(flushes).toHaveLength(0);
    buffer.add(c);
    expect(flushes.map((f) => [f.model, f.reason])).toEqual([["a", "buffers"]]);
    buffer.add(call("a"));
    expect(flushes.map((f) => [f.model, f.reason])).toEqual([
      ["a", "buffers"],
      ["b", "buffers"],
    ]);
    expect(buffer.size).toBe(2);
    expect(clock.countTimers()).toBe(2);
  });

  it("requeue puts a flushed call's very bytes into the next file of its partition", () => {
    const { raw, flushes, buffer } = setup({ batchSize: 2 });
    const [a, b, c] = [call(), call(), call()];
    buffer.add(a);
    buffer.add(b);
    expect(flushes).toHaveLength(1);
    buffer.add(c);
    raw.requeue(a);
    expect(flushes).toHaveLength(2);
    expect(flushes[1]!.calls).toEqual([c, a]);
    expect(fileOf(flushes[1]!)).toBe(lines.get(c)! + lines.get(a)!);
  });

  it("a call aborted before the flush leaves the file, and the others keep their own lines", () => {
    const { buffer, flushes } = setup({ batchSize: 3 });
    const [a, b, c] = [call(), call(), call()];
    buffer.add(a);
    buffer.add(b);
    a.settled = true;
    expect(buffer.remove(a)).toBe(true);
    buffer.add(c);
    buffer.flushAll("close");
    expect(fileOf(flushes[0]!)).toBe(lines.get(b)! + lines.get(c)!);
    const own = (x: Call) => x.chunk!.subarray(x.offset!, x.offset! + x.bytes).toString();
    expect([own(b), own(c)]).toEqual([lines.get(b), lines.get(c)]);
  });

  it("remove refuses a call its batch already owns", () => {
    const { buffer, flushes } = setup({ batchSize: 1 });
    const a = call();
    buffer.add(a);
    expect(flushes).toHaveLength(1);
    a.owner = { release: () => undefined };
    expect(buffer.remove(a)).toBe(false);
  });

  it("encodes multi-byte characters by their UTF-8 size", () => {
    const { buffer, flushes } = setup();
    const c: Call = {
      customId: "u",
      endpoint: "/v1/chat/completions",
      model: "m",
      bytes: Buffer.byteLength(`héllo→${LINE_TAIL}`),
      decodeBase64: false,
      raw: false,
      retries: 0,
      settled: false,
      resolve() {},
      reject() {},
    };
    lines.set(c, `héllo→${LINE_TAIL}`);
    buffer.add(c);
    buffer.flushAll("close");
    expect(fileOf(flushes[0]!)).toBe(`héllo→${LINE_TAIL}`);
  });

  it("flushAll flushes every partition with the given reason and leaves no timer", () => {
    const { buffer, flushes, clock } = setup({ batchSize: 100 });
    buffer.add(call("a"));
    buffer.add(call("b"));
    buffer.flushAll("close");
    expect(flushes.map((f) => f.reason)).toEqual(["close", "close"]);
    expect(clock.countTimers()).toBe(0);
    expect(buffer.size).toBe(0);
  });

  it("a file flushed with its chunk mostly empty keeps only its lines' bytes, each call's line intact", () => {
    const { buffer, flushes, clock } = setup({ batchSize: 100, maxBatchBytes: 10_000 });
    const calls = [call("m", 40), call("m", 60)];
    calls.forEach((c) => buffer.add(c));
    clock.tick(1_000);
    expect(flushes).toHaveLength(1);
    for (const c of calls) {
      // The chunk the flushed calls still hold is their file's 100 bytes, not the 1 MB it was written into.
      expect(c.chunk!.buffer.byteLength).toBe(100);
      expect(c.chunk!.subarray(c.offset!, c.offset! + c.bytes).toString()).toBe(lines.get(c));
    }
    expect(fileOf(flushes[0]!)).toBe(calls.map((c) => lines.get(c)).join(""));
  });

  it("a full chunk is handed over as it is", () => {
    const { buffer, flushes, clock } = setup({ batchSize: 100, maxBatchBytes: 2_000_000 });
    const c = call("m", 700_000);
    buffer.add(c);
    clock.tick(1_000);
    expect(flushes).toHaveLength(1);
    expect(c.chunk!.length).toBe(1 << 20);
  });
});
