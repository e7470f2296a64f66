// Rejecting many calls yields to the event loop between slices, each call still settles exactly once, and the
// errors (built without capturing a stack each) carry their own name, message and call, with frames.
import { createClock } from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import type { Call } from "../../src/core/call.js";
import { Engine } from "../../src/core/engine.js";
import { rejectInSlices } from "../../src/core/reject-slices.js";
import { SLICE } from "../../src/core/turns.js";
import { BatchFailedError, ClientClosedError } from "../../src/errors.js";
import { fakeProvider, type Provider } from "../helpers/provider.js";
import { harness } from "./harness.js";

let p: Provider | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

/**
 * Counts settlements between turns of the event loop while `run` goes on: a setImmediate spinner notes `count()`
 * at each turn. Returns the most settlements any one turn saw, and how many turns there were.
 */
async function perTurn(count: () => number, run: () => Promise<unknown>) {
  let last = count();
  let most = 0;
  let turns = 0;
  let going = true;
  const spin = () => {
    if (!going) return;
    const now = count();
    most = Math.max(most, now - last);
    last = now;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  await run();
  going = false;
  most = Math.max(most, count() - last);
  return { most, turns };
}

function calls(n: number): { list: Call[]; rejections: number[] } {
  const rejections = new Array<number>(n).fill(0);
  const list = Array.from({ length: n }, (_, i): Call => {
    const call: Call = {
      customId: `c${i}`,
      endpoint: "/v1/chat/completions",
      model: "m",
      bytes: 1,
      decodeBase64: false,
      raw: false,
      retries: 0,
      settled: false,
      resolve: () => undefined,
      reject: () => undefined,
    };
    return call;
  });
  return { list, rejections };
}

const N = 50_000;

describe("rejecting in slices", () => {
  it(`${N} calls: at most ${SLICE} per turn of the event loop, each rejected once, calls settled meanwhile skipped`, async () => {
    const { list, rejections } = calls(N);
    let rejected = 0;
    const errors: unknown[] = [];
    const reject = (call: Call, error: unknown) => {
      call.settled = true;
      rejections[Number(call.customId.slice(1))]!++;
      rejected++;
      if (errors.length < 3) errors.push(error);
    };
    // Another owner settles every tenth call halfway through, as a result line or a caller leaving would.
    setImmediate(() => {
      for (let i = 0; i < N; i += 10) list[i]!.settled = true;
    });
    const reason = (call: Call) => new ClientClosedError("closed", { customId: call.customId, batchId: "b" });
    const { most, turns } = await perTurn(
      () => rejected,
      () => rejectInSlices(list, reason, reject),
    );
    expect(most).toBeLessThanOrEqual(SLICE);
    expect(turns).toBeGreaterThanOrEqual(Math.floor((N * 0.9) / SLICE));
    expect(rejections.every((n) => n <= 1)).toBe(true);
    expect(rejections.filter((n) => n === 0).length).toBeGreaterThan(0);
    expect(rejections.reduce((a, b) => a + b, 0) + list.filter((c, i) => c.settled && !rejections[i]).length).toBe(N);
    const [first, second] = errors as ClientClosedError[];
    expect(second).toBeInstanceOf(ClientClosedError);
    expect(second!.customId).toBe("c1");
    expect(second!.stack!.split("\n")[0]).toBe("ClientClosedError: closed");
    expect(second!.stack).toContain("\n    at ");
    expect(second!.stack!.slice(second!.stack!.indexOf("\n"))).toBe(first!.stack!.slice(first!.stack!.indexOf("\n")));
    expect(Error.stackTraceLimit).toBeGreaterThan(0);
  });

  it(`a failed batch of ${N} calls rejects them in slices, each once, then tells batchDone`, async () => {
    p = await fakeProvider();
    const h = harness(p.url);
    const b = h.batch(N);
    expect(await b.submit(h.stop.signal)).toBe(true);
    p.batches.get(b.id!)!.status = "failed";
    let doneSeenAt = -1;
    h.ctx.sink.events.on("batchDone", () => {
      doneSeenAt = h.outcomes.size;
    });
    const { most } = await perTurn(
      () => h.outcomes.size,
      () => b.poll(h.stop.signal),
    );
    expect(most).toBeLessThanOrEqual(SLICE);
    expect(h.outcomes.size).toBe(N);
    expect([...h.outcomes.values()].every((o) => !o.ok && o.value instanceof BatchFailedError)).toBe(true);
    expect(h.log.filter((l) => l.startsWith("settled ")).length).toBe(N);
    const done = h.events.find((e) => e.type === "batchDone") as { failed: number } | undefined;
    expect(done?.failed).toBe(N);
    // batchDone comes after the last rejection, with the counts of all of them.
    expect(doneSeenAt).toBe(N);
  }, 30_000);

  it(`close({ cancel: true }) with ${N} waiting calls yields to the event loop and rejects each once`, async () => {
    const engine = new Engine({
      apiKey: "sk-test-0123456789",
      baseURL: "http://127.0.0.1:9/v1",
      clock: createClock(),
      batchWindowMs: 3_600_000,
      batchSize: N,
    });
    let rejected = 0;
    let wrong = 0;
    for (let i = 0; i < N - 1; i++)
      engine.submit("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: `q${i}` }] }).then(
        () => wrong++,
        (e) => {
          if (!(e instanceof ClientClosedError)) wrong++;
          rejected++;
        },
      );
    expect(engine.stats.buffered).toBe(N - 1);
    const { most } = await perTurn(
      () => rejected,
      () => engine.close({ cancel: true }),
    );
    expect(rejected).toBe(N - 1);
    expect(wrong).toBe(0);
    expect(most).toBeLessThanOrEqual(SLICE);
    expect(engine.stats.pending).toBe(0);
  }, 30_000);
});
