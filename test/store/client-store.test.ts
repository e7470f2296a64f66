// AutoBatcher with a store, on the emulator, in one process: replay, identity, keys, orphans, detach and resume, store
// faults.
import { createClock } from "@sinonjs/fake-timers";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { AutoBatcher, ClientClosedError, InvalidParamsError, type AutoBatchEvent } from "../../src/index.js";
import { openStore } from "../../src/store/open.js";
import type { FoundLine, Store } from "../../src/store/types.js";
import { chat, KEY, rejection, waitFor } from "../helpers/client.js";

const dir = mkdtempSync(join(tmpdir(), "autobatch-client-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `c${n++}.db`);

let emu: Emulator | undefined;
const clients: AutoBatcher[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(clients.splice(0).map((c) => c.close({ cancel: true }).catch(() => undefined)));
  await emu?.close();
  emu = undefined;
});

function client(store: string, events: AutoBatchEvent[] = [], extra = {}) {
  const c = new AutoBatcher({
    apiKey: KEY,
    baseURL: emu!.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    store,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  clients.push(c);
  return c;
}

/** A client on a new store submits "p" and "q", then detaches once their batch exists; returns its released calls. */
async function detachedBatch(extra = {}) {
  const e = await startEmulator({ apiKey: KEY, latencyMs: 400 });
  emu = e;
  const store = file();
  const first = client(store, [], extra);
  const calls = ["p", "q"].map((p) => rejection(first.chat.completions.create(chat(p))));
  await waitFor(() => e.counters.batchesCreated === 1, "the batch to be created");
  await first.close({ detach: true });
  return { e, store, released: await Promise.all(calls) };
}

const content = (r: { choices: { message: { content: string | null } }[] }) => r.choices[0]!.message.content;

describe("AutoBatcher with a store", () => {
  it("replays a rerun from the store: same answers, nothing executed again, identical calls kept distinct", async () => {
    // The openai flavor gives each result line its own request id.
    emu = await startEmulator({ apiKey: KEY, flavor: "openai" });
    const store = file();
    const prompts = ["a", "b", "a"];
    const first = client(store);
    const one = await Promise.all(prompts.map((p) => first.chat.completions.create(chat(p))));
    await first.close();
    expect(emu.counters.linesExecuted).toBe(3);

    const events: AutoBatchEvent[] = [];
    const second = client(store, events);
    const two = await Promise.all(prompts.map((p) => second.chat.completions.create(chat(p))));
    await second.close();
    expect(two.map(content)).toEqual(["echo: a", "echo: b", "echo: a"]);
    expect(two.map((r) => r._request_id)).toEqual(one.map((r) => r._request_id));
    expect(new Set(two.map((r) => r._request_id)).size).toBe(3);
    expect(emu.counters.linesExecuted).toBe(3);
    expect(emu.counters.batchesCreated).toBe(1);
    expect(events.filter((e) => e.type === "flush")).toHaveLength(0);
  });

  it("submits a third identical call anew while replaying the first two", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    const first = client(store);
    await Promise.all([0, 1].map(() => first.chat.completions.create(chat("same"))));
    await first.close();
    const second = client(store);
    await Promise.all([0, 1, 2].map(() => second.chat.completions.create(chat("same"))));
    await second.close();
    expect(emu.counters.linesExecuted).toBe(3);
  });

  it("answers one idempotency key once, across clients, and refuses it with another body", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    const first = client(store);
    const [x, y] = await Promise.all([
      first.chat.completions.create(chat("keyed"), { idempotencyKey: "k1" }),
      first.chat.completions.create(chat("keyed"), { idempotencyKey: "k1" }),
    ]);
    expect(x._request_id).toBe(y._request_id);
    await first.close();
    const second = client(store);
    const z = await second.chat.completions.create(chat("keyed"), { idempotencyKey: "k1" });
    expect(z._request_id).toBe(x._request_id);
    const err = await rejection(second.chat.completions.create(chat("other body"), { idempotencyKey: "k1" }));
    expect(err).toBeInstanceOf(InvalidParamsError);
    expect(err.message).toMatch(/idempotency key "k1" was first used with a different request/);
    expect(emu.counters.linesExecuted).toBe(1);
  });

  it("two clients that looked one key and one request up before either recorded them pay once for each", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    const events: AutoBatchEvent[] = [];
    const [a, b] = [
      client(store, [], { batchSize: 3, batchWindowMs: 60_000 }),
      client(store, events, { batchSize: 3, batchWindowMs: 60_000 }),
    ];
    const first = [a, b].map((c) => c.chat.completions.create(chat("keyed"), { idempotencyKey: "k1" }));
    const second = [a, b].map((c) => c.chat.completions.create(chat("same body")));
    await waitFor(() => a.stats.buffered === 2 && b.stats.buffered === 2, "every call to be looked up and buffered");
    const fillA = a.chat.completions.create(chat("fill a"));
    await waitFor(() => emu!.counters.batchesCreated === 1, "a's batch to be created");
    const fillB = b.chat.completions.create(chat("fill b"));
    const [ka, kb] = await Promise.all(first);
    const [sa, sb] = await Promise.all(second);
    expect(content(await fillB)).toBe("echo: fill b");
    expect(content(await fillA)).toBe("echo: fill a");
    expect(kb._request_id).toBe(ka._request_id);
    expect(sb._request_id).toBe(sa._request_id);
    // b's batch went up with its one line of its own.
    expect(emu.counters.linesExecuted).toBe(4);
    expect(events.find((e) => e.type === "batchSubmitted")).toMatchObject({ calls: 1 });
  });

  it("a call withdrawn for a line running elsewhere is submitted, as it was written, if that line is lost", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const slow = await startEmulator({ apiKey: KEY, latencyMs: 60_000 });
    const store = file();
    const opts = { batchSize: 2, batchWindowMs: 60_000 };
    const a = client(store, [], { ...opts, baseURL: slow.baseURL });
    try {
      const b = client(store, [], opts);
      void a.chat.completions.create(chat("keyed ü"), { idempotencyKey: "k1" }).catch(() => {});
      const fromB = b.chat.completions.create(chat("keyed ü"), { idempotencyKey: "k1" });
      await waitFor(() => a.stats.buffered === 1 && b.stats.buffered === 1, "both calls to be looked up and buffered");
      void a.chat.completions.create(chat("fill a")).catch(() => {});
      await waitFor(() => slow.counters.batchesCreated === 1, "a's batch to be created");
      expect(content(await b.chat.completions.create(chat("fill b")))).toBe("echo: fill b");
      // a's line is lost (as when a line is sent again elsewhere): b's call, waiting on it, is buffered again.
      const side = await openStore(store);
      const held = (await side.find(["k:k1"])).get("k:k1")!;
      await side.record([{ key: held.batchKey, retried: [held.customId] }]);
      await side.close();
      await waitFor(() => b.stats.buffered === 1, "b's call to be buffered again");
      expect(content(await b.chat.completions.create(chat("fill b2")))).toBe("echo: fill b2");
      expect(content(await fromB)).toBe("echo: keyed ü");
      expect(emu.counters.linesExecuted).toBe(3);
    } finally {
      // Its batch cancelled while its emulator still answers.
      await a.close({ cancel: true });
      await slow.close();
    }
  });

  it("with requestIdentity keys, replays only keyed calls", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    for (let run = 0; run < 2; run++) {
      const c = client(store, [], { requestIdentity: "keys" });
      await Promise.all([
        c.chat.completions.create(chat("plain")),
        c.chat.completions.create(chat("named"), { idempotencyKey: "n" }),
      ]);
      await c.close();
    }
    expect(emu.counters.linesExecuted).toBe(3);
  });

  it("detach releases waiting callers and a later client on the store finishes the batch without resubmitting", async () => {
    const { e, store, released } = await detachedBatch();
    for (const err of released) {
      expect(err).toBeInstanceOf(ClientClosedError);
      expect(err.message).toMatch(/closed with detach.*goes on upstream for a later process/);
    }
    const second = client(store);
    const again = await Promise.all(["p", "q"].map((p) => second.chat.completions.create(chat(p))));
    expect(again.map(content)).toEqual(["echo: p", "echo: q"]);
    await second.close();
    expect(e.counters.batchesCreated).toBe(1);
    expect(e.counters.linesExecuted).toBe(2);
  });

  it("a close that waits for its calls takes over the batch their lines run in once its holder's lease expires", async () => {
    const { e, store } = await detachedBatch();
    // A process that died holding the batch: its lease runs out only after the next client has begun to close.
    const held = await openStore(store);
    expect(await held.claim("dead-process", 300, 10)).toHaveLength(1);
    await held.close();
    const second = client(store);
    const again = Promise.all(["p", "q"].map((p) => second.chat.completions.create(chat(p))));
    await second.close();
    expect((await again).map(content)).toEqual(["echo: p", "echo: q"]);
    expect(e.counters.batchesCreated).toBe(1);
    expect(e.counters.linesExecuted).toBe(2);
  });

  it("rejects calls with a clear error naming a corrupt store file", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    writeFileSync(store, "not a database at all, just text".repeat(10));
    const c = client(store);
    const err = await rejection(c.chat.completions.create(chat("x")));
    expect(err.message).toBe(
      `store ${store}: is not a readable SQLite database (corrupt, or another kind of file): file is not a database`,
    );
    expect(emu.counters.batchesCreated).toBe(0);
  });
});

describe('AutoBatcher with a store, requestIdentity "adopt"', () => {
  const adopt = { requestIdentity: "adopt" } as const;
  const POLL_MS = 1_000;
  /** What the engine makes of POLL_MS: 3 poll intervals. */
  const LEASE_MS = 3 * POLL_MS;
  type FakeClock = ReturnType<typeof createClock>;
  const onClock = (clock: FakeClock) => ({ ...adopt, clock, pollIntervalMs: POLL_MS });

  /**
   * A client on a fake clock whose calls' batch was created; from now on its clock stands still, as a process that
   * stopped with its lease held: it neither renews the lease nor reads results.
   */
  async function stalled(store: string, prompts: string[]) {
    const clock = createClock(Date.now());
    const c = client(store, [], onClock(clock));
    const calls = prompts.map((p) => c.chat.completions.create(chat(p)));
    for (const call of calls) call.catch(() => undefined);
    await waitFor(async () => {
      await clock.tickAsync(10);
      return emu!.counters.batchesCreated === 1;
    }, "the batch to be created");
    return { clock, calls };
  }

  /** Moves the clocks on in step while the real HTTP exchanges they start run, until `done` holds (bounded). */
  async function runUntil(clocks: FakeClock[], done: () => boolean, what: string) {
    await waitFor(async () => {
      for (const c of clocks) await c.tickAsync(POLL_MS);
      return done();
    }, what);
  }

  const flushes = (events: AutoBatchEvent[]) => events.flatMap((e) => (e.type === "flush" ? [e.calls] : []));

  it("retries wait while a stopped process still leases their lines, then adopt them: two orphans, three retries, one submitted", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    const first = await stalled(store, ["p", "q", "p"]);

    // Its clock where the stopped one stands: the lease it took has 3 s left.
    const clock = createClock(first.clock.now);
    const events: AutoBatchEvent[] = [];
    const live = client(store, events, onClock(clock));
    let settled = 0;
    const retries = ["p", "q", "p", "p"].map((p) =>
      live.chat.completions.create(chat(p)).finally(() => {
        settled++;
      }),
    );
    // Looked up: waiting for the store's next look (a timer), none of them buffered.
    await waitFor(() => clock.countTimers() > 0, "the retries to be looked up");
    await clock.tickAsync(POLL_MS);
    expect(live.stats.buffered).toBe(0);
    expect(flushes(events)).toEqual([]);

    // The stopped process's lease runs out: the next claim takes its batch over, orphaning its three lines.
    clock.setSystemTime(clock.now + LEASE_MS);
    await runUntil([clock], () => settled === 4, "every retry to settle");
    expect((await Promise.all(retries)).map(content)).toEqual(["echo: p", "echo: q", "echo: p", "echo: p"]);
    expect(events.filter((e) => e.type === "batchResumed")).toHaveLength(1);
    expect(flushes(events)).toEqual([1]);
    expect(emu.counters.linesExecuted).toBe(4);
    expect(emu.counters.batchesCreated).toBe(2);
  });

  it("never adopts a line whose process lives: once that process renews its lease, the identical call is submitted", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = file();
    const first = await stalled(store, ["p"]);

    const clock = createClock(first.clock.now);
    const events: AutoBatchEvent[] = [];
    const other = client(store, events, onClock(clock));
    let settled = false;
    const mine = other.chat.completions.create(chat("p")).finally(() => {
      settled = true;
    });
    await waitFor(() => clock.countTimers() > 0, "the call to be looked up");
    expect(other.stats.buffered).toBe(0);

    // The first process runs on beside it, renewing its lease: its caller is alive.
    await runUntil([first.clock, clock], () => settled, "the call to settle");
    expect(content(await mine)).toBe("echo: p");
    expect(flushes(events)).toEqual([1]);
    expect(events.filter((e) => e.type === "batchResumed")).toEqual([]);
    let answered = false;
    void first.calls[0]!.finally(() => {
      answered = true;
    });
    await runUntil([first.clock, clock], () => answered, "the first process's call to settle");
    expect(content(await first.calls[0]!)).toBe("echo: p");
    expect(emu.counters.linesExecuted).toBe(2);
    expect(emu.counters.batchesCreated).toBe(2);
  });

  it("a detached client's unkeyed lines are adopted by the next client's identical calls, none billed again", async () => {
    const { e, store, released } = await detachedBatch(adopt);
    for (const err of released) expect(err).toBeInstanceOf(ClientClosedError);
    const second = client(store, [], adopt);
    const again = await Promise.all(["q", "p"].map((p) => second.chat.completions.create(chat(p))));
    expect(again.map(content)).toEqual(["echo: q", "echo: p"]);
    await second.close();
    expect(e.counters.batchesCreated).toBe(1);
    expect(e.counters.linesExecuted).toBe(2);
  });
});

describe("calls waiting on the store", () => {
  // Before the fix #check answered every call waiting when its lookup returned, including those it had not asked
  // about, as if the store had no line for them: ky was submitted a second time.
  it("a call that starts waiting while the waiting calls are being looked up waits on, and is not submitted again", async () => {
    emu = await startEmulator({ apiKey: KEY, latencyMs: 60_000 });
    const store = file();
    // Lines kx and ky run in a batch whose holder is alive (its lease is long): they are answered through the store.
    const first = client(store);
    const released = ["x", "y"].map((k) =>
      rejection(first.chat.completions.create(chat(k), { idempotencyKey: `k${k}` })),
    );
    await waitFor(() => emu!.counters.batchesCreated === 1, "the batch to be created");
    await first.close({ detach: true });
    await Promise.all(released);
    const holder = await openStore(store);
    expect(await holder.claim("live-process", 600_000, 10)).toHaveLength(1);
    await holder.close();

    // The lookup of the waiting calls (kx alone) is held until ky has started waiting.
    const proto = Object.getPrototypeOf(holder) as Store;
    const find = proto.find;
    let kxLookups = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let held: Promise<Map<string, FoundLine>> | undefined;
    let kyLooked = false;
    vi.spyOn(proto, "find").mockImplementation(function (this: Store, ids) {
      const answer = find.call(this, ids);
      if (ids.length === 1 && ids[0] === "k:ky") void answer.then(() => (kyLooked = true));
      if (ids.length !== 1 || ids[0] !== "k:kx" || ++kxLookups !== 2) return answer;
      held = gate.then(() => answer);
      return held;
    });

    const events: AutoBatchEvent[] = [];
    const second = client(store, events);
    const x = second.chat.completions.create(chat("x"), { idempotencyKey: "kx" });
    await waitFor(() => held !== undefined, "the waiting calls' lookup");
    const y = second.chat.completions.create(chat("y"), { idempotencyKey: "ky" });
    void Promise.allSettled([x, y]);
    await waitFor(() => kyLooked, "ky's lookup");
    await new Promise((r) => setImmediate(r));
    open();
    await held;
    await new Promise((r) => setImmediate(r));
    expect(second.stats.buffered).toBe(0);
    expect(events.filter((e) => e.type === "flush")).toEqual([]);
  });
});
