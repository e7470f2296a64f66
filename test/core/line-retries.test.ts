import { describe, expect, it } from "vitest";
import { APIError, BatchFailedError, type AutoBatchEvent } from "../../src/index.js";
import { chat, onFakeProvider, rejection, waitFor } from "../helpers/client.js";
import type { LineFate } from "../helpers/provider.js";

/** Content "fail 500 x2" fails with 500 in its first two batches; "code batch_expired x1" with that error code once. */
function fateOf({ content, attempt }: { content: string; attempt: number }): LineFate {
  const m = /^(fail|code) (\S+) x(\d+)$/.exec(content);
  if (!m || attempt > Number(m[3])) return { status: 200 };
  return m[1] === "fail" ? { status: Number(m[2]) } : { code: m[2]! };
}

const start = onFakeProvider(fateOf, { batchSize: 4, batchWindowMs: 5, pollIntervalMs: 5 });

describe("line retries", () => {
  it("a line failing with a transient status or code goes into a later batch; a permanent failure rejects at once", async () => {
    const { client, events, p } = await start();
    const [ok, s500, s400, expired, s429] = await Promise.allSettled([
      client.chat.completions.create(chat("fine")),
      client.chat.completions.create(chat("fail 500 x1")),
      client.chat.completions.create(chat("fail 400 x1")),
      client.chat.completions.create(chat("code batch_expired x2")),
      client.chat.completions.create(chat("fail 429 x1")),
    ]);
    expect(ok).toMatchObject({ status: "fulfilled" });
    expect((s500 as PromiseFulfilledResult<any>).value.choices[0].message.content).toBe("echo: fail 500 x1");
    expect((s400 as PromiseRejectedResult).reason).toBeInstanceOf(APIError);
    expect((s400 as PromiseRejectedResult).reason.status).toBe(400);
    expect((expired as PromiseFulfilledResult<any>).value.choices[0].message.content).toBe(
      "echo: code batch_expired x2",
    );
    expect(s429.status).toBe("fulfilled");
    const retried = events.filter((e) => e.type === "callRetried");
    expect(retried.map((e) => (e as { retry: number }).retry).sort()).toEqual([1, 1, 1, 2]);
    // Every line was executed in one batch at a time: the 400 once, the transient ones once per attempt.
    const sent = p.uploads.flatMap((u) => u.customIds);
    expect(new Set(sent).size).toBe(5);
    expect(sent).toHaveLength(5 + 4);
    const done = events.filter((e) => e.type === "batchDone") as Extract<AutoBatchEvent, { type: "batchDone" }>[];
    expect(done.reduce((n, e) => n + (e.retried ?? 0), 0)).toBe(4);
  });

  it("after lineRetries more batches the caller sees the last error", async () => {
    const { client, events, p } = await start({ lineRetries: 2 });
    const err = await rejection(client.chat.completions.create(chat("fail 503 x9")));
    expect(err).toBeInstanceOf(APIError);
    expect(err.status).toBe(503);
    expect(events.filter((e) => e.type === "callRetried")).toHaveLength(2);
    expect(p.attempts.get(err.customId)).toBe(3);
  });

  it("lineRetries: 0 rejects a transient failure at once", async () => {
    const { client, events } = await start({ lineRetries: 0 });
    const err = await rejection(client.chat.completions.create(chat("code request_timeout x1")));
    expect(err.message).toMatch(/request_timeout/);
    expect(events.some((e) => e.type === "callRetried")).toBe(false);
  });

  it("a retried call still settles once, and close() waits for its later batch", async () => {
    const { client, events } = await start();
    const pending = client.chat.completions.create(chat("fail 502 x1"));
    await waitFor(() => events.some((e) => e.type === "callRetried"), "the retry");
    await client.close();
    expect((await pending).choices[0]!.message.content).toBe("echo: fail 502 x1");
    expect(events.filter((e) => e.type === "callSettled")).toHaveLength(1);
  });

  it("once the client is closing, a retried line goes out at once instead of waiting for its buffer's window", async () => {
    const { client, events } = await start({ batchWindowMs: 3_600_000, batchSize: 2 });
    const pending = client.chat.completions.create(chat("fail 500 x1"));
    const closing = client.close();
    expect((await pending).choices[0]!.message.content).toBe("echo: fail 500 x1");
    await closing;
    expect(events.filter((e) => e.type === "flush").map((e) => (e as { reason: string }).reason)).toEqual([
      "close",
      "close",
    ]);
  });

  it("once the client is closing, the lines a batch hands back go out together, not a batch per line", async () => {
    const { client, events, p } = await start({ batchWindowMs: 3_600_000, batchSize: 8 });
    const pending = Array.from({ length: 8 }, () => client.chat.completions.create(chat("fail 503 x1")));
    const closing = client.close();
    for (const r of await Promise.all(pending)) expect(r.choices[0]!.message.content).toBe("echo: fail 503 x1");
    await closing;
    expect(events.filter((e) => e.type === "callRetried")).toHaveLength(8);
    expect(p.uploads.map((u) => u.customIds.length)).toEqual([8, 8]);
  });

  it("a call released by its signal while its line waits for a retry is not sent again", async () => {
    const { client, events, p } = await start({ batchWindowMs: 60_000, batchSize: 2 });
    const ac = new AbortController();
    const a = client.chat.completions.create(chat("fail 500 x1"), { signal: ac.signal });
    const b = client.chat.completions.create(chat("fine"));
    await b;
    await waitFor(() => events.some((e) => e.type === "callRetried"), "the retry");
    ac.abort();
    const err = await rejection(a);
    expect(err.name).toBe("APIUserAbortError");
    expect(client.stats.buffered).toBe(0);
    expect(err).not.toBeInstanceOf(BatchFailedError);
    await client.close();
    expect(p.uploads).toHaveLength(1);
  });
});
