import { afterEach, describe, expect, it } from "vitest";
import { createClock } from "@sinonjs/fake-timers";
import type { FaultSpec } from "../src/emulator/types.js";
import { AutoBatcher, BatchFailedError, InvalidParamsError, type AutoBatchEvent } from "../src/index.js";
import { chat, KEY, rejection, rig, spread, waitFor, type Rig } from "./helpers/client.js";
import { okLine } from "./helpers/provider.js";
import { scriptedProvider } from "./helpers/scripted-provider.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

describe("fault-injection suite", () => {
  it("2,000 calls through faults on every route: each settles once, right result, no duplicate batch, no line read twice", async () => {
    const CALLS = 2_000;
    const errors: unknown[] = [];
    r = await rig(
      { batchSize: 250, batchWindowMs: 20, pollIntervalMs: 10, maxRetries: 8, maxConcurrency: 6 },
      { latencyMs: [0, 40], concurrency: 128, seed: 42 },
    );
    const retry0 = { "retry-after": "0" };
    const faults: FaultSpec[] = [
      ...spread("POST /v1/files", { status: 429, headers: retry0 }, [0, 3]),
      ...spread("POST /v1/files", { status: 503, headers: retry0 }, [1, 5]),
      ...spread("POST /v1/files", { reset: true }, [2]),
      ...spread("POST /v1/files", { status: 503, headers: retry0, afterHandler: true }, [4]),
      ...spread("POST /v1/batches", { status: 429, headers: { "retry-after": "0" } }, [0, 4]),
      ...spread("POST /v1/batches", { status: 503, headers: retry0 }, [1]),
      ...spread("POST /v1/batches", { reset: true }, [2]),
      ...spread("POST /v1/batches", { reset: true, afterHandler: true }, [3]),
      ...spread("POST /v1/batches", { status: 500, headers: retry0, afterHandler: true }, [5]),
      // Within the first dozen polls: a fast run makes fewer than twenty.
      ...spread("GET /v1/batches/:id", { status: 429, headers: retry0 }, [0, 4, 8]),
      ...spread("GET /v1/batches/:id", { status: 503, headers: retry0 }, [2, 6]),
      ...spread("GET /v1/batches/:id", { reset: true }, [3, 9]),
      ...spread("GET /v1/batches/:id", { delayMs: 150 }, [5, 10]),
      ...spread("GET /v1/files/:id/content", { cutAfterBytes: 700 }, [0, 6, 15]),
      ...spread("GET /v1/files/:id/content", { cutAfterBytes: 5_000 }, [3, 10, 25]),
      ...spread("GET /v1/files/:id/content", { status: 503, headers: retry0 }, [2, 12]),
      ...spread("GET /v1/files/:id/content", { reset: true }, [8, 20]),
      ...spread("GET /v1/files/:id/content", { status: 429, headers: retry0 }, [4]),
      ...spread("GET /v1/batches", { status: 503, headers: retry0 }, [0]),
    ];
    for (const f of faults) r.emu.faults.add(f);

    const settledPerCall = new Map<string, number>();
    r.client.on("callSettled", (e) => settledPerCall.set(e.customId, (settledPerCall.get(e.customId) ?? 0) + 1));
    const outcomes = await Promise.allSettled(
      Array.from({ length: CALLS }, (_, i) =>
        r!.client.chat.completions.create(chat(i % 10 === 7 ? `fail ${i} [[status:400]]` : `call ${i}`)),
      ),
    );
    let right = 0;
    outcomes.forEach((o, i) => {
      if (i % 10 === 7) {
        if (o.status === "rejected" && o.reason.status === 400) right++;
        else errors.push(o.status === "rejected" ? o.reason : "unexpected success");
      } else if (o.status === "fulfilled" && o.value.choices[0]!.message.content === `call ${i}`.replace(/^/, "echo: "))
        right++;
      else errors.push(o.status === "rejected" ? o.reason : o.value);
    });
    await waitFor(
      () =>
        r!.events.filter((e) => e.type === "batchDone").length === r!.events.filter((e) => e.type === "flush").length,
      "every batchDone",
    );

    const flushes = r.events.filter((e) => e.type === "flush").length;
    const duplicatedSettlements = [...settledPerCall.values()].filter((n) => n !== 1).length;
    const done = r.events.filter((e): e is Extract<AutoBatchEvent, { type: "batchDone" }> => e.type === "batchDone");
    const linesInFiles = done.reduce((n, e) => n + e.counts.completed + e.counts.failed, 0);
    const figures = {
      calls: CALLS,
      faultsInjected: r.emu.counters.faultsInjected,
      right,
      lost: CALLS - settledPerCall.size,
      duplicatedSettlements,
      flushes,
      batchesCreated: r.emu.counters.batchesCreated,
      filesUploaded: r.emu.counters.filesUploaded,
      resultLinesInFiles: linesInFiles,
      resultLinesRead: r.client.stats.reads.lines,
    };
    console.log(`fault suite: ${JSON.stringify(figures)}`);
    expect(errors.slice(0, 3)).toEqual([]);
    expect(right).toBe(CALLS);
    expect(figures.lost).toBe(0);
    expect(duplicatedSettlements).toBe(0);
    // Every route sees at least one request per batch, so each fault placed before that many requests must have
    // fired; later ones depend on how many polls the timing needs, and are not counted on.
    expect(r.emu.faults.list().filter((f) => (f.after ?? 0) < flushes)).toEqual([]);
    expect(figures.faultsInjected).toBeGreaterThanOrEqual(faults.filter((f) => (f.after ?? 0) < flushes).length);
    expect(figures.batchesCreated).toBe(flushes);
    expect(figures.filesUploaded).toBe(flushes);
    expect(figures.resultLinesRead).toBe(linesInFiles);

    // Nothing the client produced during the suite carries the key: errors, their stacks and causes, events.
    const rejections = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected").map((o) => o.reason);
    const texts = [
      ...rejections.flatMap((e) => [e.message, e.stack, String(e.cause ?? ""), JSON.stringify(e)]),
      JSON.stringify(r.events),
    ];
    expect(texts.filter((t) => t?.includes(KEY))).toEqual([]);
  }, 60_000);
});

describe("ambiguous answers to upload and create", () => {
  it.each(["POST /v1/files", "POST /v1/batches"])(
    "a 2xx to %s cut after its headers is retried without a duplicate",
    async (route) => {
      r = await rig({ batchSize: 2 });
      r.emu.faults.add({ route, cutAfterBytes: 10 });
      const out = await Promise.all([
        r.client.chat.completions.create(chat("a")),
        r.client.chat.completions.create(chat("b")),
      ]);
      expect(out.map((c) => c.choices[0]!.message.content)).toEqual(["echo: a", "echo: b"]);
      expect(r.emu.counters.faultsInjected).toBe(1);
      expect(r.emu.counters.batchesCreated).toBe(1);
      expect(r.emu.counters.filesUploaded).toBe(1);
    },
  );
});

describe("not ready is not a failure", () => {
  it("a 404 on a result file while the batch runs is read as 'no lines yet'", async () => {
    r = await rig({ batchSize: 2 });
    r.emu.faults.add({ route: "GET /v1/files/:id/content", status: 404, times: 3 });
    const out = await Promise.all([
      r.client.chat.completions.create(chat("a [[latency:30]]")),
      r.client.chat.completions.create(chat("b [[latency:30]]")),
    ]);
    expect(out.map((c) => c.choices[0]!.message.content)).toEqual(["echo: a [[latency:30]]", "echo: b [[latency:30]]"]);
    expect(r.emu.counters.faultsInjected).toBeGreaterThanOrEqual(1);
  });
});

describe("finished batches whose files cannot be read", () => {
  it("are retried on later polls, then settled with a clear error instead of polled forever", async () => {
    r = await rig({ batchSize: 1, maxRetries: 0 }, { flavor: "openai" });
    r.emu.faults.add({ route: "GET /v1/files/:id/content", status: 404, times: null });
    const err = await rejection(r.client.chat.completions.create(chat("done but unreadable")));
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.batchStatus).toBe("completed");
    expect(err.message).toMatch(/its result files could not be read \(404 /);
  });
});

describe("deadlines and vanished batches", () => {
  it("a batch that vanishes upstream (404) settles its calls with a clear error", async () => {
    r = await rig({ batchSize: 1 });
    const p = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    r.emu.faults.add({ route: "GET /v1/batches/:id", status: 404, times: null });
    const err = await rejection(p);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.message).toMatch(/the batch no longer exists upstream \(404\)/);
  });

  it("a batch whose status cannot be read after the retry budget settles instead of hanging", async () => {
    r = await rig({ batchSize: 1, maxRetries: 1 });
    const p = r.client.chat.completions.create(chat("slow [[latency:60000]]"));
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    r.emu.faults.add({ route: "GET /v1/batches/:id", status: 503, headers: { "retry-after": "0" }, times: null });
    const err = await rejection(p);
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.message).toMatch(/its status could not be read \(503 /);
  });

  it("a batch still running long past its completion window plus grace is given up on", async () => {
    const clock = createClock();
    r = await rig({
      batchSize: 1,
      completionWindow: "1h",
      deadlineGraceMs: 60_000,
      pollIntervalMs: 600_000,
      clock,
      batchWindowMs: 0,
    });
    const p = r.client.chat.completions.create(chat("stuck [[latency:600000]]"));
    let err: any;
    p.catch((e: unknown) => (err = e));
    await clock.tickAsync(0);
    await waitFor(() => r!.events.some((e) => e.type === "batchSubmitted"), "submission");
    for (let i = 0; i < 8 && !err; i++) {
      await clock.tickAsync(600_000);
      await waitFor(
        () => r!.client.stats.runningBatches === 0 || (r!.emu.counters.requests["GET /v1/batches/:id"] ?? 0) > i,
        "poll",
        2_000,
      ).catch(() => undefined);
      await new Promise((res) => setTimeout(res, 10));
    }
    expect(err).toBeInstanceOf(BatchFailedError);
    expect(err.message).toMatch(/still not finished long after its completion window/);
    expect(err.batchStatus).toBe("in_progress");
  });
});

describe("bad input from the provider", () => {
  it("a create answer that does not match the batch envelope fails that file's calls clearly; the next file works", async () => {
    r = await rig({ batchSize: 2 });
    r.emu.faults.add({ route: "POST /v1/batches", status: 200, body: { unexpected: true } });
    const first = await Promise.allSettled([
      r.client.chat.completions.create(chat("a")),
      r.client.chat.completions.create(chat("b")),
    ]);
    for (const o of first)
      expect((o as PromiseRejectedResult).reason.message).toMatch(/POST \/batches: unexpected response shape: id:/);
    const ok = await Promise.all([
      r.client.chat.completions.create(chat("c")),
      r.client.chat.completions.create(chat("d")),
    ]);
    expect(ok.map((c) => c.choices[0]!.message.content)).toEqual(["echo: c", "echo: d"]);
    expect(r.events.find((e) => e.type === "batchSubmitFailed")).toMatchObject({ calls: 2 });
  });

  it("an upload rejected by the provider rejects its calls with the provider's status and message", async () => {
    r = await rig({ batchSize: 1 });
    r.emu.faults.add({ route: "POST /v1/files", status: 400, body: "Line 1: Missing 'model' field" });
    const err = await rejection(r.client.chat.completions.create(chat("a")));
    expect(err.status).toBe(400);
    expect(err.message).toContain("Line 1: Missing 'model' field");
    expect(err.customId).toMatch(/^ab-/);
  });

  it("a result line for a custom_id never sent, a truncated line and an empty error file affect nobody else", async () => {
    const warnings: string[] = [];
    const server = await scriptedProvider({
      output: ([a, b, c]) =>
        `${okLine("someone-else")}\n${okLine(a!, a)}\n{"custom_id":"${b}","response":{"status_co\n\n${okLine(c!, c)}`,
      errors: () => "",
    });
    const client = new AutoBatcher({
      apiKey: KEY,
      baseURL: server.url,
      batchSize: 3,
      pollIntervalMs: 5,
      onEvent: (e) => e.type === "warning" && warnings.push(e.message),
    });
    try {
      const [a, b, c] = await Promise.allSettled([0, 1, 2].map((i) => client.chat.completions.create(chat(`q${i}`))));
      const customIds = server.ids();
      expect((a as PromiseFulfilledResult<any>).value.choices[0].message.content).toBe(customIds[0]);
      expect((a as PromiseFulfilledResult<any>).value._request_id).toBe(`req-${customIds[0]}`);
      expect((b as PromiseRejectedResult).reason.message).toMatch(/result line for this call is not valid JSON/);
      expect((c as PromiseFulfilledResult<any>).value.choices[0].message.content).toBe(customIds[2]);
      expect(warnings.join("\n")).toMatch(/result line for unknown custom_id "someone-else" ignored/);
    } finally {
      await client.close({ cancel: true });
      await server.close();
    }
  });

  it("a gigantic result line, streamed in small chunks, settles its call; the line next to it too", async () => {
    const big = "z".repeat(30_000_000);
    const server = await scriptedProvider({
      output: ([a, b]) => `${okLine(a!, big)}\n${okLine(b!, "small")}\n`,
      chunkBytes: 64 * 1024,
    });
    const client = new AutoBatcher({ apiKey: KEY, baseURL: server.url, batchSize: 2, pollIntervalMs: 5 });
    try {
      const [a, b] = await Promise.all([
        client.chat.completions.create(chat("big")),
        client.chat.completions.create(chat("small")),
      ]);
      expect(a.choices[0]!.message.content!.length).toBe(big.length);
      expect(b.choices[0]!.message.content).toBe("small");
      expect(client.stats.reads.lines).toBe(2);
    } finally {
      await client.close({ cancel: true });
      await server.close();
    }
  });

  it("a Responses body whose output is malformed still settles its call (output_text empty)", async () => {
    const server = await scriptedProvider({
      output: ([id]) =>
        `${JSON.stringify({ custom_id: id, response: { status_code: 200, body: { object: "response", output: [{ type: "message", content: 5 }] } } })}\n`,
    });
    const client = new AutoBatcher({ apiKey: KEY, baseURL: server.url, batchSize: 1, pollIntervalMs: 5 });
    try {
      const out = await client.responses.create({ model: "m", input: "x" });
      expect(out.output_text).toBe("");
    } finally {
      await client.close({ cancel: true });
      await server.close();
    }
  });

  it("custom body fields that cannot be serialised are rejected on that call only", async () => {
    r = await rig({ batchSize: 1 });
    const err = await rejection(r.client.chat.completions.create({ ...chat("x"), metadata: { n: 10n } } as never));
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect(err.message).toMatch(/cannot be serialised to JSON/);
    expect((await r.client.chat.completions.create(chat("fine"))).choices[0]!.message.content).toBe("echo: fine");
  });
});
