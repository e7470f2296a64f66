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

function setup(limits: Partial<{ batchSize: number; maxBatchBytes: number; batchWindowMs: number }> = {}) {
  const clock = createClock();
  const flushes: Flushed[] = [];
  const raw = new CallBuffer({ batchSize: 3, maxBatchBytes: 1_000, batchWindowMs: 1_000, ...limits }, clock, (f) =>
    flushes.push(f),
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
  return { clock, flushes, buffer };
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
    const calls = [call("m", 700_000), call("m", 700_000), call("m", 1_500_000), call("m", 5)];
    calls.forEach((c) => buffer.add(c));
    buffer.flushAll("close");
    expect(flushes[0]!.parts.length).toBeGreaterThan(1);
    expect(fileOf(flushes[0]!)).toBe(calls.map((c) => lines.get(c)).join(""));
    expect(calls.every((c) => c.chunk === undefined)).toBe(true);
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
});
