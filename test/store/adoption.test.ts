// Orphans (requestIdentity "adopt"), AutoBatcher on the emulator and one SQLite store: a process that stops with its
// lease held is played by a client whose fake clock is never moved again (it neither renews nor reads), so each
// client's view of that lease is set by its own clock.
import { createClock } from "@sinonjs/fake-timers";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { AutoBatcher, ClientClosedError, type AutoBatchEvent } from "../../src/index.js";
import type { Call } from "../../src/core/call.js";
import type { Clock } from "../../src/internal/clock.js";
import { Seeker } from "../../src/store/adoption.js";
import { chat, KEY, rejection, waitFor } from "../helpers/client.js";

const dir = mkdtempSync(join(tmpdir(), "autobatch-adoption-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

let emu: Emulator | undefined;
const clients: AutoBatcher[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close({ cancel: true }).catch(() => undefined)));
  await emu?.close();
  emu = undefined;
});

const POLL_MS = 1_000;
/** What the engine makes of POLL_MS: 3 poll intervals. */
const LEASE_MS = 3 * POLL_MS;

function client(store: string, o: { clock?: Clock; events?: AutoBatchEvent[] } = {}) {
  const c = new AutoBatcher({
    apiKey: KEY,
    baseURL: emu!.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: o.clock ? POLL_MS : 10,
    store,
    requestIdentity: "adopt",
    clock: o.clock,
    onEvent: (e) => o.events?.push(e),
  });
  clients.push(c);
  return c;
}

const content = (r: { choices: { message: { content: string | null } }[] }) => r.choices[0]!.message.content;

/** A client on a fake clock whose calls' batch was created; from now on its clock stands still. */
async function stalled(store: string, prompts: string[]) {
  const clock = createClock(Date.now());
  const c = client(store, { clock });
  const calls = prompts.map((p) => c.chat.completions.create(chat(p)));
  for (const call of calls) call.catch(() => undefined);
  await waitFor(async () => {
    await clock.tickAsync(10);
    return emu!.counters.batchesCreated === 1;
  }, "the batch to be created");
  return { clock, calls };
}

type FakeClock = ReturnType<typeof createClock>;

/** Moves the clocks on in step while the real HTTP exchanges they start run, until `done` holds (bounded). */
async function runUntil(clocks: FakeClock[], done: () => boolean, what: string) {
  await waitFor(async () => {
    for (const c of clocks) await c.tickAsync(POLL_MS);
    return done();
  }, what);
}

describe('requestIdentity "adopt"', () => {
  it("retries wait while a stopped process still leases their lines, then adopt them: two orphans, three retries, one submitted", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = join(dir, `a${n++}.db`);
    const first = await stalled(store, ["p", "q", "p"]);

    // Its clock where the stopped one stands: the lease it took has 3 s left.
    const clock = createClock(first.clock.now);
    const events: AutoBatchEvent[] = [];
    const live = client(store, { clock, events });
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
    expect(events.filter((e) => e.type === "flush")).toEqual([]);

    // The stopped process's lease runs out: the next claim takes its batch over, orphaning its three lines.
    clock.setSystemTime(clock.now + LEASE_MS);
    await runUntil([clock], () => settled === 4, "every retry to settle");
    expect((await Promise.all(retries)).map(content)).toEqual(["echo: p", "echo: q", "echo: p", "echo: p"]);
    expect(events.filter((e) => e.type === "batchResumed")).toHaveLength(1);
    expect(events.filter((e) => e.type === "flush").map((e) => e.type === "flush" && e.calls)).toEqual([1]);
    expect(emu.counters.linesExecuted).toBe(4);
    expect(emu.counters.batchesCreated).toBe(2);
  });

  it("never adopts a line whose process lives: once that process renews its lease, the identical call is submitted", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const store = join(dir, `a${n++}.db`);
    const first = await stalled(store, ["p"]);

    const clock = createClock(first.clock.now);
    const events: AutoBatchEvent[] = [];
    const other = client(store, { clock, events });
    const mine = other.chat.completions.create(chat("p"));
    await waitFor(() => clock.countTimers() > 0, "the call to be looked up");
    expect(other.stats.buffered).toBe(0);

    // The first process runs on beside it, renewing its lease: its caller is alive.
    let settled = false;
    void mine.finally(() => {
      settled = true;
    });
    await runUntil([first.clock, clock], () => settled, "the call to settle");
    expect(content(await mine)).toBe("echo: p");
    expect(events.filter((e) => e.type === "flush").map((e) => e.type === "flush" && e.calls)).toEqual([1]);
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
    emu = await startEmulator({ apiKey: KEY, latencyMs: 300 });
    const store = join(dir, `a${n++}.db`);
    const first = client(store);
    const calls = ["p", "q"].map((p) => rejection(first.chat.completions.create(chat(p))));
    await waitFor(() => emu!.counters.batchesCreated === 1, "the batch to be created");
    await first.close({ detach: true });
    for (const err of await Promise.all(calls)) expect(err).toBeInstanceOf(ClientClosedError);

    const second = client(store);
    const again = await Promise.all(["q", "p"].map((p) => second.chat.completions.create(chat(p))));
    expect(again.map(content)).toEqual(["echo: q", "echo: p"]);
    await second.close();
    expect(emu.counters.batchesCreated).toBe(1);
    expect(emu.counters.linesExecuted).toBe(2);
  });
});

describe("a call waiting to adopt", () => {
  const seeker = () => new Seeker({ call: {} as Call });
  const live = (until: number) => ({ key: "b1", leaseUntil: until, expired: false });
  const expired = (until: number) => ({ key: "b1", leaseUntil: until, expired: true });

  it("waits while a batch first suspected keeps its lease, and stops once its holder renews it", () => {
    const s = seeker();
    expect(s.waits([live(100)])).toBe(true);
    expect(s.waits([live(100)])).toBe(true);
    expect(s.waits([live(250)])).toBe(false);
    expect(s.waits([live(400)])).toBe(false);
  });

  it("stops once the batch is no longer suspected (taken over: its line is an orphan, or ended)", () => {
    const s = seeker();
    expect(s.waits([live(100)])).toBe(true);
    expect(s.waits([])).toBe(false);
  });

  it("gives up on a lease seen expired on two looks in a row (a claim between them did not take the batch)", () => {
    const s = seeker();
    expect(s.waits([live(100)])).toBe(true);
    expect(s.waits([expired(100)])).toBe(true);
    expect(s.waits([expired(100)])).toBe(false);
  });

  it("never waits for batches that appear after its first look, nor when there are none", () => {
    expect(seeker().waits([])).toBe(false);
    const s = seeker();
    expect(s.waits([])).toBe(false);
    expect(s.waits([live(100)])).toBe(false);
  });
});
