// AutoBatcher's per-call options (openai-node's RequestOptions): `timeout` becomes that call's own deadline on the
// injected clock, alongside `signal`; the fields that cannot apply to a batch line are accepted and ignored.
import { createClock } from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { APIConnectionTimeoutError, APIPromise, InvalidParamsError } from "../src/index.js";
import { chat, rejection, rig, waitFor, type Rig } from "./helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

describe("per-call timeout", () => {
  it("rejects that call with APIConnectionTimeoutError when its clock runs out; its neighbour is untouched", async () => {
    const clock = createClock();
    r = await rig({ clock, batchSize: 2, pollIntervalMs: 1_000 });
    const slow = r.client.chat.completions.create(chat("[[latency:60000]] slow"), { timeout: 30_000 });
    const other = r.client.chat.completions.create(chat("[[latency:60000]] other"));
    expect(slow).toBeInstanceOf(APIPromise);
    const failure = rejection(slow);
    let otherSettled = false;
    void other.then(
      () => (otherSettled = true),
      () => (otherSettled = true),
    );
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    await clock.tickAsync(29_999);
    await clock.tickAsync(1);
    const err = await failure;
    expect(err).toBeInstanceOf(APIConnectionTimeoutError);
    expect((err as Error).message).toBe("Request timed out.");
    expect(otherSettled).toBe(false);
    expect(r.client.stats.pending).toBe(1);
  });

  it("a call answered in time leaves no timer, and keeps the APIPromise helpers", async () => {
    const clock = createClock();
    r = await rig({ clock, batchSize: 1, pollIntervalMs: 1_000 });
    const call = r.client.chat.completions.create(chat("quick"), {
      timeout: 3_600_000,
      maxRetries: 3,
      headers: { "x-ignored": "1" },
      idempotencyKey: "k-1",
    });
    for (let i = 0; i < 20 && r.client.stats.pending > 0; i++) {
      await clock.tickAsync(1_000);
      await new Promise((res) => setTimeout(res, 10));
    }
    const { data, response } = await call.withResponse();
    expect(data.choices[0]!.message.content).toBe("echo: quick");
    expect(response.status).toBe(200);
    await waitFor(() => clock.countTimers() === 0, "no timer left");
  });

  it("a caller's signal still aborts a call that has a timeout", async () => {
    r = await rig({ batchWindowMs: 60_000 });
    const ac = new AbortController();
    const call = r.client.chat.completions.create(chat("x"), { timeout: 60_000, signal: ac.signal });
    ac.abort();
    expect((await rejection(call)).name).toBe("APIUserAbortError");
  });

  it("rejects a timeout that is not a positive number, naming it", async () => {
    r = await rig();
    const err = await rejection(r.client.chat.completions.create(chat("x"), { timeout: -1 }));
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect((err as InvalidParamsError).param).toBe("timeout");
    expect(r.client.stats.pending).toBe(0);
  });
});
