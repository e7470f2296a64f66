import { createClock } from "@sinonjs/fake-timers";
import { describe, expect, it } from "vitest";
import { BatchFailedError, type AutoBatcherOptions, type AutoBatchEvent } from "../../src/index.js";
import { chat, onFakeProvider, rejection } from "../helpers/client.js";
import type { FakeBatch } from "../helpers/provider.js";

const open = onFakeProvider(() => ({ status: 200 }), { batchSize: 2, batchWindowMs: 0, pollIntervalMs: 1_000 });

const refuse = (b: FakeBatch) =>
  Object.assign(b, {
    status: "failed",
    errors: {
      data: [
        {
          code: "token_limit_exceeded",
          message:
            "Enqueued token limit reached for m in organization org-x. Please try again once some in_progress batches have been completed.",
        },
      ],
    },
  });

async function start(options: AutoBatcherOptions = {}) {
  const clock = createClock();
  const { client, events, p } = await open({ clock, ...options });
  /** Advances the fake clock in steps (real I/O in between) until `done`; bounded in steps. */
  const drive = async (done: () => boolean, stepMs = 1_000, steps = 50) => {
    for (let i = 0; i < steps && !done(); i++) {
      await clock.tickAsync(stepMs);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (!done()) throw new Error("not done within the steps given");
  };
  return { client, events, p, clock, drive };
}

describe("the enqueued-token limit", () => {
  it("a refused batch's calls wait for this client's running batch of that model, then go into a new batch", async () => {
    const { client, events, p, drive } = await start({ lineRetries: 0 });
    // The first batch runs (validating) until the test finishes it; the second is refused over the limit.
    p.hooks.onCreate = (b) => {
      if (b.id === "batch_1") b.status = "validating";
      if (b.id === "batch_2") refuse(b);
    };
    const first = [chat("a"), chat("b")].map((c) => client.chat.completions.create(c));
    const second = [chat("c"), chat("d")].map((c) => client.chat.completions.create(c));
    const settled: string[] = [];
    for (const [i, pr] of [...first, ...second].entries()) void pr.then(() => settled.push("abcd"[i]!));
    await drive(() => events.some((e) => e.type === "capacityWait"));
    expect(events.find((e) => e.type === "capacityWait")).toMatchObject({
      batchId: "batch_2",
      model: "test-model",
      calls: 2,
      runningBatches: 1,
    });
    expect(client.stats.waitingForCapacity).toBe(2);
    // Nothing resubmitted while the first batch still holds the capacity.
    await drive(() => false, 1_000, 5).catch(() => undefined);
    expect(p.uploads).toHaveLength(2);
    expect(settled).toEqual([]);

    p.finish("batch_1");
    await drive(() => settled.length === 4);
    expect((await second[0]!).choices[0]!.message.content).toBe("echo: c");
    expect(p.uploads).toHaveLength(3);
    const uploadOf = (id: string) => p.uploads[Number(p.batches.get(id)!.input_file_id!.slice("file-in-".length)) - 1]!;
    expect(uploadOf("batch_3").customIds).toEqual(uploadOf("batch_2").customIds);
    // No line retry was spent (lineRetries is 0) and nobody saw an error.
    expect(events.some((e) => e.type === "callRetried")).toBe(false);
    expect(events.filter((e) => e.type === "callSettled").every((e) => (e as { ok: boolean }).ok)).toBe(true);
  });

  it("with no batch of its own running, the refused calls are sent again after a bounded backoff", async () => {
    const { client, events, p, drive } = await start();
    let refusals = 2;
    p.hooks.onCreate = (b) => {
      if (refusals-- > 0) refuse(b);
    };
    const calls = [chat("x"), chat("y")].map((c) => client.chat.completions.create(c));
    let done = 0;
    for (const c of calls) void c.then(() => done++);
    await drive(() => events.some((e) => e.type === "capacityWait"));
    const waits = () =>
      events.filter((e) => e.type === "capacityWait") as Extract<AutoBatchEvent, { type: "capacityWait" }>[];
    expect(waits()[0]).toMatchObject({ runningBatches: 0, retryInMs: 60_000 });
    await drive(() => waits().length === 2, 5_000, 40);
    expect(waits()[1]!.retryInMs).toBe(120_000);
    await drive(() => done === 2, 10_000, 40);
    expect(p.uploads).toHaveLength(3);
    expect((await calls[1]!).choices[0]!.message.content).toBe("echo: y");
  });

  it("a closing client sends the calls that waited for capacity together, in one batch", async () => {
    const { client, events, p, drive } = await start({ batchSize: 4, batchWindowMs: 3_600_000 });
    p.hooks.onCreate = (b) => {
      if (b.id === "batch_1") refuse(b);
    };
    const calls = ["a", "b", "c", "d"].map((c) => client.chat.completions.create(chat(c)));
    let done = 0;
    for (const c of calls) void c.then(() => done++);
    const closing = client.close();
    await drive(() => events.some((e) => e.type === "capacityWait"));
    await drive(() => done === 4, 10_000, 40);
    await closing;
    expect(p.uploads.map((u) => u.customIds.length)).toEqual([4, 4]);
  });

  it("a call released by its signal while it waits for capacity is rejected at once; the others wait on", async () => {
    const { client, events, p, drive } = await start({ batchSize: 3, batchWindowMs: 600_000 });
    p.hooks.onCreate = (b) => {
      if (b.id === "batch_1") refuse(b);
    };
    const ac = new AbortController();
    const leaving = client.chat.completions.create(chat("leaves"), { signal: ac.signal });
    const staying = client.chat.completions.create(chat("stays"));
    const third = client.chat.completions.create(chat("third"));
    await drive(() => events.some((e) => e.type === "capacityWait"));
    // A new call of the same model waits in a buffer meanwhile.
    const buffered = client.chat.completions.create(chat("buffered"));
    ac.abort();
    expect((await rejection(leaving)).name).toBe("APIUserAbortError");
    expect(client.stats).toMatchObject({ waitingForCapacity: 2, buffered: 1 });
    await drive(() => client.stats.pending === 0, 20_000, 20);
    expect((await staying).choices[0]!.message.content).toBe("echo: stays");
    expect((await third).choices[0]!.message.content).toBe("echo: third");
    expect((await buffered).choices[0]!.message.content).toBe("echo: buffered");
    expect(p.uploads.at(-1)!.customIds).toHaveLength(3);
  });

  it("a refused call released by its caller as its batch is done leaves the buffered calls of its model be", async () => {
    let ac: AbortController | undefined;
    const { client, p, drive } = await start({
      batchSize: 2,
      batchWindowMs: 600_000,
      // Its caller leaves on hearing that the refused batch is done, before its calls wait for capacity.
      onEvent: (e) => {
        if (e.type === "batchDone" && e.batchId === "batch_1") ac?.abort();
      },
    });
    p.hooks.onCreate = (b) => {
      if (b.id === "batch_1") refuse(b);
    };
    ac = new AbortController();
    const leaving = client.chat.completions.create(chat("leaves"), { signal: ac.signal });
    const staying = client.chat.completions.create(chat("stays"));
    // A call of the same model waits in a buffer meanwhile.
    const buffered = client.chat.completions.create(chat("buffered"));
    let left: any;
    void leaving.catch((e: unknown) => (left = e));
    await drive(() => left !== undefined);
    expect(left.name).toBe("APIUserAbortError");
    expect(client.stats.buffered).toBe(1);
    const closing = client.close();
    await drive(() => client.stats.pending === 0, 20_000, 20);
    await closing;
    expect((await staying).choices[0]!.message.content).toBe("echo: stays");
    expect((await buffered).choices[0]!.message.content).toBe("echo: buffered");
  });

  it("a call whose deadline passes while it waits for capacity is rejected, naming the limit", async () => {
    const { client, events, p, drive } = await start({ completionWindow: "1h", deadlineGraceMs: 0 });
    p.hooks.onCreate = (b) => refuse(b);
    const call = client.chat.completions.create(chat("never"));
    let err: any;
    call.catch((e: unknown) => (err = e));
    await drive(() => err !== undefined, 60_000, 200);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.message).toMatch(/token_limit_exceeded/);
    expect(events.filter((e) => e.type === "capacityWait").length).toBeGreaterThan(1);
    expect(await rejection(call)).toBe(err);
  });
});
