import { afterEach, describe, expect, it } from "vitest";
import { createClock } from "@sinonjs/fake-timers";
import {
  APIUserAbortError,
  AutoBatcher,
  BadRequestError,
  BatchFailedError,
  ClientClosedError,
  InternalServerError,
  InvalidParamsError,
  ResultParseError,
} from "../src/index.js";
import { chat, emuGet, emuPost, emuText, KEY, rejection, rig, waitFor, type Rig } from "./helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const contentOf = (c: { choices: { message: { content: string | null } }[] }) => c.choices[0]!.message.content;

describe("AutoBatcher on the emulator", () => {
  it("batches many concurrent calls into one file and answers each caller with its own result", async () => {
    r = await rig({ batchSize: 200, batchWindowMs: 50 });
    const prompts = Array.from({ length: 150 }, (_, i) => `question ${i}`);
    const results = await Promise.all(prompts.map((p) => r!.client.chat.completions.create(chat(p))));
    results.forEach((res, i) => expect(contentOf(res)).toBe(`echo: ${prompts[i]}`));
    expect(r.emu.counters.batchesCreated).toBe(1);
    expect(r.emu.counters.filesUploaded).toBe(1);
    expect(r.events.filter((e) => e.type === "callSettled")).toHaveLength(150);
  });

  it("writes JSONL lines {custom_id, method, url, body} with unique ids of at most 64 bytes and no stream field", async () => {
    r = await rig({ batchSize: 3 });
    await Promise.all(
      [0, 1, 2].map((i) => r!.client.chat.completions.create({ ...chat(`q${i}`), stream: false, temperature: 0.5 })),
    );
    const submitted = r.events.find((e) => e.type === "batchSubmitted");
    expect(submitted).toMatchObject({
      type: "batchSubmitted",
      calls: 3,
      endpoint: "/v1/chat/completions",
      model: "test-model",
    });
    const text = await emuText(r.emu, `/files/${(submitted as { inputFileId: string }).inputFileId}/content`);
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const [i, line] of lines.entries()) {
      expect(Object.keys(line)).toEqual(["custom_id", "method", "url", "body"]);
      expect(line).toMatchObject({
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "test-model", temperature: 0.5, messages: [{ role: "user", content: `q${i}` }] },
      });
      expect(line.body).not.toHaveProperty("stream");
      expect(Buffer.byteLength(line.custom_id)).toBeLessThanOrEqual(64);
    }
    expect(new Set(lines.map((l) => l.custom_id)).size).toBe(3);
  });

  it("keeps one buffer per (endpoint, model): separate batches, each with the right endpoint", async () => {
    r = await rig();
    const [a, b, e, resp] = await Promise.all([
      r.client.chat.completions.create(chat("a", "model-a")),
      r.client.chat.completions.create(chat("b", "model-b")),
      r.client.embeddings.create({ model: "model-a", input: ["x", "y"] }),
      r.client.responses.create({ model: "model-a", input: "hello" }),
    ]);
    expect(contentOf(a)).toBe("echo: a");
    expect(contentOf(b)).toBe("echo: b");
    expect(e.data).toHaveLength(2);
    expect(Array.isArray(e.data[0]!.embedding) && typeof e.data[0]!.embedding[0]).toBe("number");
    expect(resp.output_text).toBe("echo: hello");
    const submitted = r.events
      .filter((ev) => ev.type === "batchSubmitted")
      .map((ev) => `${(ev as { endpoint: string }).endpoint} ${(ev as { model: string }).model}`);
    expect(submitted.sort()).toEqual([
      "/v1/chat/completions model-a",
      "/v1/chat/completions model-b",
      "/v1/embeddings model-a",
      "/v1/responses model-a",
    ]);
    const batches = await emuGet<{ data: { endpoint: string; metadata: Record<string, string> }[] }>(
      r.emu,
      "/batches?limit=10",
    );
    expect(batches.data.map((b) => b.endpoint).sort()).toEqual([
      "/v1/chat/completions",
      "/v1/chat/completions",
      "/v1/embeddings",
      "/v1/responses",
    ]);
    expect(batches.data.every((b) => typeof b.metadata.autobatch_key === "string")).toBe(true);
  });

  it("returns float embeddings when the caller asked for floats, base64-decoded otherwise (as openai-node)", async () => {
    r = await rig();
    const [asked, implicit, b64] = await Promise.all([
      r.client.embeddings.create({ model: "m", input: "same", encoding_format: "float" }),
      r.client.embeddings.create({ model: "m", input: "same" }),
      r.client.embeddings.create({ model: "m", input: "same", encoding_format: "base64" }),
    ]);
    expect(implicit.data[0]!.embedding).toHaveLength((asked.data[0]!.embedding as number[]).length);
    (implicit.data[0]!.embedding as number[]).forEach((v, i) =>
      expect(v).toBeCloseTo((asked.data[0]!.embedding as number[])[i]!, 5),
    );
    expect(typeof b64.data[0]!.embedding).toBe("string");
  });

  it("settles callers progressively while the batch is still running", async () => {
    r = await rig({ batchSize: 4 });
    const slow = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    const fast = await Promise.all(["f1", "f2", "f3"].map((p) => r!.client.chat.completions.create(chat(p))));
    expect(fast.map(contentOf)).toEqual(["echo: f1", "echo: f2", "echo: f3"]);
    const batchId = (r.events.find((e) => e.type === "batchSubmitted") as { batchId: string }).batchId;
    const upstream = await emuGet<{ status: string; request_counts: { completed: number } }>(
      r.emu,
      `/batches/${batchId}`,
    );
    expect(upstream.status).toBe("in_progress");
    expect(upstream.request_counts.completed).toBe(3);
    let slowDone = false;
    void slow.then(
      () => (slowDone = true),
      () => (slowDone = true),
    );
    await new Promise((res) => setTimeout(res, 30));
    expect(slowDone).toBe(false);
  });

  it.each(["skip", "offset"] as const)(
    "reads each result line exactly once with the %s cursor, nothing skipped",
    async (param) => {
      r = await rig({ batchSize: 60, batchWindowMs: 20 }, { contentCursorParam: param, latencyMs: [0, 400], seed: 7 });
      const calls = Array.from({ length: 60 }, (_, i) => r!.client.chat.completions.create(chat(`p${i}`)));
      const results = await Promise.all(calls);
      results.forEach((res, i) => expect(contentOf(res)).toBe(`echo: p${i}`));
      const outputRequests = r.emu.counters.requests["GET /v1/files/:id/content"] ?? 0;
      expect(outputRequests).toBeGreaterThan(1);
      const served = Object.values(r.emu.counters.linesServed).reduce((a, b) => a + b, 0);
      expect(served).toBe(60);
    },
  );

  it("rejects non-2xx lines with the status and the provider's message (Doubleword error file)", async () => {
    r = await rig({ batchSize: 3 });
    const [ok, bad, broken] = await Promise.allSettled([
      r.client.chat.completions.create(chat("fine")),
      r.client.chat.completions.create(chat("nope [[status:400]]")),
      r.client.chat.completions.create(chat("boom [[status:500]]")),
    ]);
    expect(ok.status).toBe("fulfilled");
    const err = (bad as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.status).toBe(400);
    expect(err.customId).toMatch(/^ab-/);
    expect(err.batchId).toBeTruthy();
    expect(err.error?.message).toBeTruthy();
    expect(err.message.startsWith("400 ")).toBe(true);
    expect((broken as PromiseRejectedResult).reason).toBeInstanceOf(InternalServerError);
  });

  it("rejects non-2xx lines with the status and message on the OpenAI flavor too", async () => {
    r = await rig({ batchSize: 2 }, { flavor: "openai" });
    const [ok, bad] = await Promise.allSettled([
      r.client.chat.completions.create(chat("fine")),
      r.client.chat.completions.create(chat("x [[status:404]]")),
    ]);
    expect(ok.status).toBe("fulfilled");
    const err = (bad as PromiseRejectedResult).reason;
    expect(err.status).toBe(404);
    expect(err.constructor.name).toBe("NotFoundError");
    expect(err.batchId).toMatch(/^batch_/);
  });

  it("a malformed line fails only its own call; a duplicate line is ignored", async () => {
    r = await rig({ batchSize: 3 });
    const [a, b, c] = await Promise.allSettled([
      r.client.chat.completions.create(chat("ok")),
      r.client.chat.completions.create(chat("bad [[malformed]]")),
      r.client.chat.completions.create(chat("twice [[duplicate]]")),
    ]);
    expect(a.status).toBe("fulfilled");
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(ResultParseError);
    expect((b as PromiseRejectedResult).reason.message).toMatch(/is not valid JSON/);
    expect(c.status).toBe("fulfilled");
    expect(contentOf((c as PromiseFulfilledResult<any>).value)).toBe("echo: twice [[duplicate]]");
    expect(r.events.filter((e) => e.type === "callSettled")).toHaveLength(3);
  });

  it("a completed batch without a line for a call rejects that call naming the batch and why", async () => {
    r = await rig({ batchSize: 2 });
    const [ok, dropped] = await Promise.allSettled([
      r.client.chat.completions.create(chat("ok")),
      r.client.chat.completions.create(chat("gone [[drop]]")),
    ]);
    expect(ok.status).toBe("fulfilled");
    const err = (dropped as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.batchStatus).toBe("completed");
    expect(err.message).toMatch(/^Batch \S+ ended with status "completed": no result line for this call/);
    expect(r.events.find((e) => e.type === "batchDone")).toMatchObject({
      status: "completed",
      succeeded: 1,
      failed: 1,
      calls: 2,
    });
  });

  it("a batch that fails validation (OpenAI) rejects every call with the provider's reason", async () => {
    r = await rig({ batchSize: 3 }, { flavor: "openai", maxLines: 2 });
    const results = await Promise.allSettled([0, 1, 2].map((i) => r!.client.chat.completions.create(chat(`q${i}`))));
    for (const res of results) {
      const err = (res as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(BatchFailedError);
      expect(err.batchStatus).toBe("failed");
      expect(err.message).toMatch(/too_many_tasks/);
    }
  });

  it("an all-failed Doubleword batch (status failed) still gives each call its own line's error", async () => {
    r = await rig({ batchSize: 2 });
    const results = await Promise.allSettled([
      r.client.chat.completions.create(chat("a [[status:422]]")),
      r.client.chat.completions.create(chat("b [[status:422]]")),
    ]);
    for (const res of results) expect((res as PromiseRejectedResult).reason.status).toBe(422);
    await waitFor(() => r!.events.some((e) => e.type === "batchDone"), "batchDone");
    expect(r.events.find((e) => e.type === "batchDone")).toMatchObject({ status: "failed" });
  });

  it("an expired batch (OpenAI) keeps the finished results and rejects the rest with batch_expired", async () => {
    // Without line retries: with them, a batch_expired line goes into a later batch (test/core/line-retries.test.ts).
    r = await rig({ batchSize: 2, lineRetries: 0 }, { flavor: "openai" });
    const fast = r.client.chat.completions.create(chat("fast"));
    const slow = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    const batchId = (r.events.find((e) => e.type === "batchSubmitted") as { batchId: string }).batchId;
    await waitFor(
      async () => (await emuGet(r!.emu, `/batches/${batchId}`)).request_counts.completed === 1,
      "first line done",
    );
    r.emu.expireNow(batchId);
    expect(contentOf(await fast)).toBe("echo: fast");
    const err = await rejection(slow);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.message).toMatch(/batch_expired/);
    expect(err.batchStatus).toBe("expired");
  });

  it("a batch cancelled upstream rejects the calls still waiting, after keeping the finished ones", async () => {
    r = await rig({ batchSize: 2 });
    const fast = r.client.chat.completions.create(chat("fast"));
    const slow = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    expect(contentOf(await fast)).toBe("echo: fast");
    const batchId = (r.events.find((e) => e.type === "batchSubmitted") as { batchId: string }).batchId;
    await emuPost(r.emu, `/batches/${batchId}/cancel`);
    const err = await rejection(slow);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.batchStatus).toBe("cancelled");
    expect(err.message).toContain(`Batch ${batchId} ended with status "cancelled": no result line for this call`);
  });

  it("abort before the flush removes the call from the buffer; it is never uploaded", async () => {
    r = await rig({ batchSize: 10, batchWindowMs: 40 });
    const ac = new AbortController();
    const aborted = r.client.chat.completions.create(chat("never sent"), { signal: ac.signal });
    const kept = r.client.chat.completions.create(chat("kept"));
    ac.abort();
    expect(await rejection(aborted)).toBeInstanceOf(APIUserAbortError);
    expect(contentOf(await kept)).toBe("echo: kept");
    const submitted = r.events.find((e) => e.type === "batchSubmitted") as { inputFileId: string; calls: number };
    expect(submitted.calls).toBe(1);
    expect(await emuText(r.emu, `/files/${submitted.inputFileId}/content`)).not.toContain("never sent");
  });

  it("abort after the flush releases the caller while the batch goes on", async () => {
    r = await rig({ batchSize: 2 });
    const ac = new AbortController();
    const released = r.client.chat.completions.create(chat("slow [[latency:300]]"), { signal: ac.signal });
    const other = r.client.chat.completions.create(chat("other [[latency:300]]"));
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    ac.abort();
    const err = await rejection(released);
    expect(err).toBeInstanceOf(APIUserAbortError);
    expect(err.batchId).toBeTruthy();
    expect(contentOf(await other)).toBe("echo: other [[latency:300]]");
  });

  it("an already-aborted signal rejects at once", async () => {
    r = await rig();
    expect(
      await rejection(r.client.chat.completions.create(chat("x"), { signal: AbortSignal.abort() })),
    ).toBeInstanceOf(APIUserAbortError);
  });

  it("close() reports batchDone, with the final status, for every batch", async () => {
    r = await rig({ batchSize: 2 });
    await Promise.all(["a", "b", "c", "d"].map((p) => r!.client.chat.completions.create(chat(p))));
    await r.client.close();
    const done = r.events.filter((e) => e.type === "batchDone");
    expect(done).toHaveLength(2);
    expect(done.every((e) => (e as { status: string }).status === "completed")).toBe(true);
  });

  it("a batch whose every caller left during submission is cancelled, not left billing", async () => {
    r = await rig({ batchSize: 2 });
    // The provider creates the batch but answers 503: the client backs off for a second before looking it up.
    r.emu.faults.add({ route: "POST /v1/batches", status: 503, headers: { "retry-after": "1" }, afterHandler: true });
    const ac = new AbortController();
    const calls = [0, 1].map((i) =>
      rejection(r!.client.chat.completions.create(chat(`q${i} [[latency:60000]]`), { signal: ac.signal })),
    );
    await waitFor(() => r!.emu.counters.batchesCreated === 1, "batch created upstream");
    ac.abort();
    for (const c of calls) expect(await c).toBeInstanceOf(APIUserAbortError);
    await waitFor(
      async () =>
        (await emuGet<{ data: { status: string }[] }>(r!.emu, "/batches?limit=10")).data[0]?.status === "cancelled",
      "orphan cancelled",
    );
  });

  it("close({ cancel: true }) while a create's answer is in doubt finds the batch by its key and cancels it", async () => {
    r = await rig({ batchSize: 2 });
    // The provider creates the batch but answers 503: the client waits 5 s before looking for it. It closes meanwhile.
    r.emu.faults.add({ route: "POST /v1/batches", status: 503, headers: { "retry-after": "5" }, afterHandler: true });
    const calls = [0, 1].map((i) => rejection(r!.client.chat.completions.create(chat(`c${i} [[latency:60000]]`))));
    await waitFor(() => r!.emu.counters.batchesCreated === 1, "batch created upstream");
    await r.client.close({ cancel: true });
    for (const c of calls) expect(await c).toBeInstanceOf(ClientClosedError);
    expect(r.emu.counters.requests["POST /v1/batches/:id/cancel"]).toBe(1);
    const listed = await emuGet<{ data: { status: string }[] }>(r.emu, "/batches?limit=10");
    expect(listed.data[0]?.status).toMatch(/^cancell(ing|ed)$/);
  });

  it("close() flushes what is buffered, waits for every call, then refuses new calls", async () => {
    r = await rig({ batchWindowMs: 60_000 });
    const pending = [r.client.chat.completions.create(chat("a")), r.client.chat.completions.create(chat("b"))];
    expect(r.client.stats.buffered).toBe(2);
    await r.client.close();
    expect((await Promise.all(pending)).map(contentOf)).toEqual(["echo: a", "echo: b"]);
    expect(r.events.find((e) => e.type === "flush")).toMatchObject({ reason: "close", calls: 2 });
    expect(r.client.stats.pending).toBe(0);
    expect(await rejection(r.client.chat.completions.create(chat("late")))).toBeInstanceOf(ClientClosedError);
  });

  it("close({ cancel: true }) cancels running batches upstream and rejects what remains", async () => {
    r = await rig({ batchSize: 1 });
    const running = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    const batchId = (r.events.find((e) => e.type === "batchSubmitted") as { batchId: string }).batchId;
    const released = rejection(running);
    await r.client.close({ cancel: true });
    expect(await released).toBeInstanceOf(ClientClosedError);
    const upstream = await emuGet<{ status: string }>(r.emu, `/batches/${batchId}`);
    expect(upstream.status).toBe("cancelled");
  });

  it("rejects stream: true and bad params without touching any batch", async () => {
    r = await rig();
    const s = await rejection(r.client.chat.completions.create({ ...chat("x"), stream: true } as never));
    expect(s).toBeInstanceOf(InvalidParamsError);
    expect(s.param).toBe("stream");
    expect(s.message).toMatch(/Batch API/);
    expect(await rejection(r.client.chat.completions.create({ model: "m" } as never))).toBeInstanceOf(
      InvalidParamsError,
    );
    const ok = await r.client.chat.completions.create(chat("neighbour"));
    expect(contentOf(ok)).toBe("echo: neighbour");
    expect(r.emu.counters.batchesCreated).toBe(1);
  });

  it("rejects a single request too large for any batch file", async () => {
    r = await rig({ maxBatchBytes: 1_000 });
    const err = await rejection(r.client.chat.completions.create(chat("x".repeat(2_000))));
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect(err.message).toMatch(/more than maxBatchBytes \(1000\)/);
  });

  it("lifecycle events carry counts and never the key", async () => {
    r = await rig({ batchSize: 2 });
    await Promise.all([r.client.chat.completions.create(chat("a")), r.client.chat.completions.create(chat("b"))]);
    await waitFor(() => r!.events.some((e) => e.type === "batchDone"), "batchDone");
    const types = new Set(r.events.map((e) => e.type));
    for (const t of ["flush", "batchSubmitted", "batchDone", "callSettled"]) expect(types.has(t as never)).toBe(true);
    expect(JSON.stringify(r.events)).not.toContain(KEY);
  });

  it("a throwing listener does not break batching", async () => {
    r = await rig({
      batchSize: 1,
      onEvent: () => {
        throw new Error("listener bug");
      },
    });
    r.client.on("callSettled", () => {
      throw new Error("another");
    });
    expect(contentOf(await r.client.chat.completions.create(chat("still fine")))).toBe("echo: still fine");
  });
});

describe("timing with an injected clock", () => {
  it("flushes on batchWindowMs of the injected clock and polls on its pollIntervalMs", async () => {
    const clock = createClock();
    r = await rig({ clock, batchWindowMs: 5_000, pollIntervalMs: 1_000, batchSize: 100 });
    const p = r.client.chat.completions.create(chat("timed"));
    await new Promise((res) => setTimeout(res, 20));
    expect(r.emu.counters.filesUploaded).toBe(0);
    await clock.tickAsync(4_999);
    expect(r.emu.counters.filesUploaded).toBe(0);
    await clock.tickAsync(1);
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    let settled = false;
    void p.then(() => (settled = true));
    await new Promise((res) => setTimeout(res, 30));
    expect(settled).toBe(false);
    expect(r.emu.counters.requests["GET /v1/batches/:id"] ?? 0).toBe(0);
    for (let i = 0; i < 20 && !settled; i++) {
      await clock.tickAsync(1_000);
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(contentOf(await p)).toBe("echo: timed");
    expect(r.emu.counters.requests["GET /v1/batches/:id"]).toBeGreaterThanOrEqual(1);
  });

  it("an aborted last call leaves no window timer, and a finished batch leaves no poll tick", async () => {
    const clock = createClock();
    r = await rig({ clock, batchWindowMs: 5_000, pollIntervalMs: 1_000, batchSize: 100 });
    const ac = new AbortController();
    const gone = rejection(r.client.chat.completions.create(chat("x"), { signal: ac.signal }));
    expect(clock.countTimers()).toBe(1);
    ac.abort();
    await gone;
    expect(clock.countTimers()).toBe(0);
    const p = r.client.chat.completions.create(chat("y"));
    await clock.tickAsync(5_000);
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    for (let i = 0; i < 20 && !r.events.some((e) => e.type === "batchDone"); i++) {
      await clock.tickAsync(1_000);
      await new Promise((res) => setTimeout(res, 10));
    }
    expect((await p).choices[0]!.message.content).toBe("echo: y");
    await waitFor(() => clock.countTimers() === 0, "no timer left");
  });

  it("an idle client holds no timer", async () => {
    const clock = createClock();
    const client = new AutoBatcher({ apiKey: "k", baseURL: "http://127.0.0.1:9/v1", clock });
    expect(clock.countTimers()).toBe(0);
    await client.close();
  });
});
