// The fault soak, part II: providers that misbehave beyond statuses and resets (trickling bodies, oversized lines,
// non-JSON 2xx creates, the enqueued-token limit, lost create answers with failing lookups, lagging lists), with
// lines quoting the key mixed in. For each: every line executed once, none lost, none settled twice, right results,
// and no key in any message or event.
import { afterEach, describe, expect, it } from "vitest";
import type { EmulatorOptions, FaultSpec } from "../src/emulator/types.js";
import type { AutoBatcherOptions } from "../src/index.js";
import { chat, KEY, rig, spread, waitFor, type Rig } from "./helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const CALLS = 200;

interface Soak {
  client?: AutoBatcherOptions;
  emulator?: EmulatorOptions;
  faults?: FaultSpec[];
  /** A marker for call i beyond the key echo every 10th call has, and the error code it must then end with. */
  special?: { every: number; marker: string; code: string };
}

/** Runs CALLS calls through the faults and checks the invariants; returns the figures for the log. */
async function soak(name: string, s: Soak) {
  r = await rig(
    { batchSize: 25, batchWindowMs: 20, pollIntervalMs: 10, maxRetries: 8, maxConcurrency: 6, ...s.client },
    { latencyMs: [0, 20], concurrency: 64, seed: 7, ...s.emulator },
  );
  for (const f of s.faults ?? []) r.emu.faults.add(f);
  const settled = new Map<string, number>();
  r.client.on("callSettled", (e) => settled.set(e.customId, (settled.get(e.customId) ?? 0) + 1));
  const kind = (i: number) => (i % 10 === 3 ? "key" : s.special && i % s.special.every === 1 ? "special" : "plain");
  const prompt = (i: number) =>
    `${name} ${i}${kind(i) === "key" ? " [[echo-key]]" : kind(i) === "special" ? ` ${s.special!.marker}` : ""}`;
  const outcomes = await Promise.allSettled(
    Array.from({ length: CALLS }, (_, i) => r!.client.chat.completions.create(chat(prompt(i)))),
  );
  const wrong: unknown[] = [];
  outcomes.forEach((o, i) => {
    const k = kind(i);
    if (k === "plain" && o.status === "fulfilled" && o.value.choices[0]!.message.content === `echo: ${prompt(i)}`)
      return;
    if (k === "key" && o.status === "rejected" && o.reason.status === 401) return;
    if (k === "special" && o.status === "rejected" && o.reason.code === s.special!.code) return;
    wrong.push({ i, kind: k, got: o.status === "rejected" ? o.reason.message : "fulfilled" });
  });
  const flushes = () => r!.events.filter((e) => e.type === "flush").length;
  const ended = () => r!.events.filter((e) => e.type === "batchDone" || e.type === "batchSubmitFailed").length;
  await waitFor(() => ended() >= flushes(), "every batch done (or its submission failed)", 10_000);
  const figures = {
    name,
    calls: CALLS,
    wrong: wrong.length,
    lost: CALLS - settled.size,
    settledTwice: [...settled.values()].filter((n) => n !== 1).length,
    linesExecuted: r.emu.counters.linesExecuted,
    flushes: flushes(),
    batchesCreated: r.emu.counters.batchesCreated,
    faultsInjected: r.emu.counters.faultsInjected,
    reads: r.client.stats.reads,
  };
  console.log(`misbehaviour soak: ${JSON.stringify(figures)}`);
  expect(wrong.slice(0, 3)).toEqual([]);
  expect(figures.lost).toBe(0);
  expect(figures.settledTwice).toBe(0);
  expect(figures.linesExecuted).toBe(CALLS);
  expect(figures.batchesCreated).toBe(figures.flushes);
  const rejections = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected").map((o) => o.reason);
  const texts = [
    ...rejections.flatMap((e) => [e.message, e.stack, String(e.cause ?? ""), JSON.stringify(e)]),
    JSON.stringify(r.events),
  ];
  expect(texts.filter((t) => t?.includes(KEY))).toEqual([]);
  return figures;
}

describe("fault soak II: providers that misbehave", () => {
  it("trickling bodies on polls and result reads are cut at requestDeadlineMs and resumed", async () => {
    const f = await soak("trickle", {
      client: { requestDeadlineMs: 300 },
      faults: [
        ...spread("GET /v1/files/:id/content", { trickleMs: 40 }, [0, 4, 9]),
        // Polls read statuses from list pages while two or more batches run, by id otherwise: both trickle.
        ...spread("GET /v1/batches", { trickleMs: 40 }, [0, 1]),
        ...spread("GET /v1/batches/:id", { trickleMs: 40 }, [0]),
      ],
    });
    // How many polls and reads a run makes depends on timing: every fault its route's requests reached has fired, and
    // the two on result reads that every run reaches (8 batches, 8 output files) are among them.
    const counts = r!.emu.counters.requests;
    expect(r!.emu.faults.list().filter((x) => (x.after ?? 0) < (counts[x.route] ?? 0))).toEqual([]);
    expect(f.faultsInjected).toBeGreaterThanOrEqual(2);
    expect(f.reads.requests).toBeGreaterThan(f.flushes * 2);
  }, 60_000);

  it("an oversized result line fails only its own call (result_line_too_large), read once", async () => {
    const f = await soak("oversize", {
      client: { maxResultLineBytes: 100_000 },
      special: { every: 7, marker: "[[oversize:300000]]", code: "result_line_too_large" },
    });
    expect(f.reads.lines).toBeLessThanOrEqual(CALLS + 50);
  }, 60_000);

  it("error bodies quoting the key on every route leave no trace of it", async () => {
    const body = { error: { message: `Incorrect API key provided: ${KEY}`, type: "server_error", code: null } };
    await soak("keyed-faults", {
      faults: [
        ...spread("POST /v1/files", { status: 503, headers: { "retry-after": "0" }, body }, [0, 2]),
        ...spread("POST /v1/batches", { status: 500, headers: { "retry-after": "0" }, body }, [1]),
        ...spread("GET /v1/batches/:id", { status: 503, headers: { "retry-after": "0" }, body }, [0, 5, 9]),
        ...spread("GET /v1/files/:id/content", { status: 502, headers: { "retry-after": "0" }, body }, [1, 6]),
      ],
    });
  }, 60_000);

  // A 2xx create answer that is not JSON, or not a batch, is ambiguous: the batch is looked up, not lost.
  it("a non-JSON 2xx answer to a create that happened: the batch is found, not lost", async () => {
    await soak("non-json-create", {
      faults: spread(
        "POST /v1/batches",
        { status: 200, body: "<html>upstream gateway</html>", afterHandler: true },
        [0, 3],
      ),
    });
  }, 60_000);

  // Refused lines go back until capacity frees, spending no retry.
  it("OpenAI's enqueued-token limit: refused batches' lines are submitted again, none fails", async () => {
    await soak("token-limit", {
      emulator: { flavor: "openai", enqueuedTokenLimit: 120, latencyMs: [5, 30] },
    });
  }, 60_000);

  // A lost create answer followed by failing lookups: looked up again until found, never created twice.
  it("a lost create answer, then a lookup refused (4xx): no call rejected, nothing runs for nobody", async () => {
    await soak("lost-create-failing-lookup", {
      faults: [
        ...spread("POST /v1/batches", { reset: true, afterHandler: true }, [0, 4]),
        { route: "GET /v1/batches", status: 400, times: 2 },
      ],
    });
  }, 60_000);

  // A batch list that lags behind creation must not make a duplicate batch.
  it("a lost create answer with a lagging batch list: no duplicate batch", async () => {
    await soak("lagging-list", {
      emulator: { listLagMs: 1_000 },
      faults: spread("POST /v1/batches", { reset: true, afterHandler: true }, [0, 4]),
    });
  }, 60_000);

  it("a result file that trickles forever: every call settles with a clear error and close() returns", async () => {
    r = await rig({ batchSize: 5, requestDeadlineMs: 200, maxRetries: 1 });
    r.emu.faults.add({ route: "GET /v1/files/:id/content", trickleMs: 50, times: null });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => r!.client.chat.completions.create(chat(`stuck ${i}`))),
    );
    for (const o of outcomes) {
      expect(o.status).toBe("rejected");
      expect((o as PromiseRejectedResult).reason.message).toMatch(
        /its result files could not be read \(.*no complete answer within requestDeadlineMs \(200 ms\)/,
      );
    }
    await r.client.close();
  }, 30_000);
});
