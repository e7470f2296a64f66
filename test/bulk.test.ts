// AutoBatcher.bulk() on the emulator: results in completion order under their ids, errors per item, a repeated id,
// leaving early, the input read under its bound, replay from a store, abort and close.
import { createClock } from "@sinonjs/fake-timers";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startEmulator } from "../src/emulator/index.js";
import {
  APIUserAbortError,
  AutoBatcher,
  BadRequestError,
  ClientClosedError,
  InvalidParamsError,
  type BulkRequest,
  type BulkResult,
} from "../src/index.js";
import { chat, KEY, rig, waitFor, type Rig } from "./helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});
const dir = mkdtempSync(join(tmpdir(), "autobatch-bulk-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ask = (id: string, text = id): BulkRequest => ({ id, params: chat(text) });
const textOf = (x: BulkResult) => (x.ok && "choices" in x.result ? x.result.choices[0]!.message.content : undefined);

/** Yields `n` chat requests `r0`…, counting how many were read; `closed` once its return() ran. */
function counted(n: number) {
  const seen = { read: 0, closed: false };
  function* gen(): Generator<BulkRequest> {
    try {
      for (let i = 0; i < n; i++) {
        seen.read++;
        yield ask(`r${i}`);
      }
    } finally {
      seen.closed = true;
    }
  }
  return { seen, requests: gen() };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("AutoBatcher.bulk", () => {
  it("hands each result back under its id, in completion order, not input order", async () => {
    r = await rig({ batchSize: 4 });
    const requests = [ask("slow", "[[latency:400]] slow"), ask("a"), ask("b"), ask("c")];
    const out = await collect(r.client.bulk(requests));
    expect(out.map((x) => x.id).sort()).toEqual(["a", "b", "c", "slow"]);
    expect(out.at(-1)!.id).toBe("slow");
    for (const x of out) expect(textOf(x)).toBe(x.id === "slow" ? "echo: [[latency:400]] slow" : `echo: ${x.id}`);
    expect(r.emu.counters.batchesCreated).toBe(1);
    expect(r.client.stats.pending).toBe(0);
  });

  it("reads async iterables too, mixes endpoints, and gives one error item per failing request", async () => {
    r = await rig({ batchSize: 10 });
    async function* requests(): AsyncGenerator<BulkRequest> {
      yield ask("good");
      yield ask("refused", "[[status:400]] no");
      yield { id: "emb", endpoint: "/v1/embeddings", params: { model: "e", input: "vector me" } };
      yield { id: "bad", params: { model: "m" } as never };
      yield { id: "where", endpoint: "/v1/nowhere" as never, params: chat("x") };
    }
    const out = new Map((await collect(r.client.bulk(requests()))).map((x) => [x.id, x]));
    expect([...out.keys()].sort()).toEqual(["bad", "emb", "good", "refused", "where"]);
    expect(textOf(out.get("good")!)).toBe("echo: good");
    const emb = out.get("emb")!;
    expect(emb.ok && "data" in emb.result && emb.result.data[0]!.embedding.length).toBeGreaterThan(0);
    const refused = out.get("refused")!;
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.error).toBeInstanceOf(BadRequestError);
    const bad = out.get("bad")!;
    expect(!bad.ok && bad.error).toBeInstanceOf(InvalidParamsError);
    expect(!bad.ok && bad.error.message).toMatch(/messages/);
    const where = out.get("where")!;
    expect(!where.ok && where.error.message).toMatch(/endpoint "\/v1\/nowhere"/);
    // The two bad requests never reached a batch.
    expect(r.emu.counters.linesExecuted).toBe(3);
  });

  it("throws on an id repeated while the first is unanswered, naming it, and releases the rest", async () => {
    r = await rig({ batchSize: 100, batchWindowMs: 60_000 });
    const job = r.client.bulk([ask("x"), ask("y"), ask("x")]);
    const err = await collect(job).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect((err as Error).message).toBe('bulk request id "x" is already in this job, unanswered');
    await waitFor(() => r!.client.stats.pending === 0, "the job's calls to be released");
    expect(r.client.stats.buffered).toBe(0);
    expect(r.emu.counters.filesUploaded).toBe(0);
  });

  it("leaving the loop early stops reading, closes the input and releases every request not yet answered", async () => {
    r = await rig({ batchSize: 5 });
    const { seen, requests } = counted(1_000);
    const job = r.client.bulk(requests, { maxQueued: 20 });
    let got = 0;
    for await (const x of job) {
      expect(x.ok).toBe(true);
      if (++got === 3) break;
    }
    expect(seen.closed).toBe(true);
    expect(r.client.stats.pending).toBe(0);
    const read = seen.read;
    expect(read).toBeLessThan(1_000);
    // Nothing more is read or answered afterwards: the job is over.
    expect(await job.next()).toEqual({ value: undefined, done: true });
    expect(seen.read).toBe(read);
  });

  it("pauses reading at maxQueued lines not yet in a running batch, and ends when the client closes", async () => {
    // A fake clock that never moves: the window never flushes, so read lines stay buffered.
    r = await rig({ clock: createClock(), batchSize: 1_000 });
    const { seen, requests } = counted(10_000);
    const job = r.client.bulk(requests, { maxQueued: 50 });
    const first = job.next();
    await waitFor(() => seen.read === 50, "the job to read up to its bound");
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(seen.read).toBe(50);
    expect(r.client.stats.buffered).toBe(50);
    await r.client.close({ cancel: true });
    const out = [await first];
    let failure: unknown;
    try {
      for (let x = await job.next(); !x.done; x = await job.next()) out.push(x);
    } catch (err) {
      failure = err;
    }
    // The 50 sent were released by the close, each once; then the job says why it stopped short.
    expect(out).toHaveLength(50);
    for (const x of out) expect(!x.done && !x.value.ok && x.value.error).toBeInstanceOf(ClientClosedError);
    expect(new Set(out.map((x) => !x.done && x.value.id)).size).toBe(50);
    expect(failure).toBeInstanceOf(ClientClosedError);
    expect((failure as Error).message).toMatch(/closed before the bulk job's input was read whole/);
    expect(seen.read).toBeLessThanOrEqual(51);
    expect(seen.closed).toBe(true);
  });

  it("a graceful close while reading still answers every request read, then throws", async () => {
    r = await rig({ batchSize: 10 });
    const { seen, requests } = counted(5_000);
    const ids = new Set<string>();
    let closing: Promise<void> | undefined;
    const err = await (async () => {
      for await (const x of r!.client.bulk(requests, { maxQueued: 20 })) {
        expect(x.ok).toBe(true);
        ids.add(x.id);
        closing ??= r!.client.close();
      }
    })().catch((e: unknown) => e);
    await closing;
    expect(err).toBeInstanceOf(ClientClosedError);
    // Every request handed to the engine before the close got its result; the one read after it was refused.
    expect(ids.size).toBeGreaterThanOrEqual(seen.read - 1);
    expect(ids.size).toBeLessThan(5_000);
  });

  it("aborting its signal stops the job with APIUserAbortError and releases what waits", async () => {
    r = await rig({ batchSize: 1_000, batchWindowMs: 60_000 });
    const { seen, requests } = counted(10_000);
    const controller = new AbortController();
    const job = r.client.bulk(requests, { maxQueued: 30, signal: controller.signal });
    const next = job.next();
    await waitFor(() => seen.read === 30, "the job to read up to its bound");
    controller.abort();
    await expect(next).rejects.toBeInstanceOf(APIUserAbortError);
    await waitFor(() => r!.client.stats.pending === 0, "release");
    expect(seen.closed).toBe(true);
    expect(r.emu.counters.filesUploaded).toBe(0);
  });

  it("with a store and a key prefix, a rerun replays stored results: each line runs once", async () => {
    const emu = await startEmulator({ port: 0, apiKey: KEY });
    try {
      const store = join(dir, "replay.db");
      const requests = () => [ask("one"), ask("two"), ask("three", "[[status:400]] three")];
      // "keys": only the job's keys are matched in the store, as `autobatch run` does.
      const run = async (prefix: string) => {
        const client = new AutoBatcher({
          apiKey: KEY,
          baseURL: emu.baseURL,
          batchWindowMs: 10,
          pollIntervalMs: 10,
          store,
          requestIdentity: "keys",
        });
        const out = await collect(client.bulk(requests(), { idempotencyKeyPrefix: prefix }));
        await client.close();
        return new Map(out.map((x) => [x.id, x]));
      };
      const first = await run("job-1:");
      expect(emu.counters.linesExecuted).toBe(3);
      const second = await run("job-1:");
      expect(emu.counters.linesExecuted).toBe(3);
      expect(emu.counters.batchesCreated).toBe(1);
      expect([...second.keys()].sort()).toEqual(["one", "three", "two"]);
      expect(textOf(second.get("one")!)).toBe("echo: one");
      expect(textOf(second.get("two")!)).toBe(textOf(first.get("two")!));
      const three = second.get("three")!;
      expect(!three.ok && three.error).toBeInstanceOf(BadRequestError);
      // Another prefix is another job: its lines run.
      await run("job-2:");
      expect(emu.counters.linesExecuted).toBe(6);
    } finally {
      await emu.close();
    }
  });

  it("refuses bad options and inputs with a clear error", async () => {
    r = await rig();
    expect(() => r!.client.bulk([], { maxQueued: 0 })).toThrow(/maxQueued must be a positive integer of lines/);
    expect(() => r!.client.bulk(42 as never)).toThrow(/iterable/);
    const err = await collect(r.client.bulk([{ params: chat("x") } as never])).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/needs an id/);
    expect(await collect(r.client.bulk([]))).toEqual([]);
  });
});
