// A fleet on PostgreSQL: three real processes share one store (a server the test starts) and one emulator; one is
// SIGKILLed after creating its batch. The survivors take its batch over by lease expiry and store its results; a
// rerun of the killed program is then answered from the store at once; every line is executed once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { fingerprint } from "../../src/store/identity.js";
import { openStore } from "../../src/store/open.js";
import { runApp } from "../helpers/child-app.js";
import { startPostgres, type PgServer } from "../helpers/postgres.js";

let pg: PgServer;
let emu: Emulator;
beforeAll(async () => {
  pg = await startPostgres();
  emu = await startEmulator();
}, 60_000);
afterAll(async () => {
  await emu?.close();
  pg?.stop();
});

const CALLS = 8;
const POLL_MS = 100;
const identity = (prefix: string, i: number, latency: number) => {
  const p = i === CALLS - 1 ? "p0" : `p${i}`;
  const content = `${prefix}${p} [[latency:${latency}]]`;
  return `f:${fingerprint("/v1/chat/completions", JSON.stringify({ model: "m", messages: [{ role: "user", content }] }))}:${i === CALLS - 1 ? 1 : 0}`;
};

describe("a fleet on PostgreSQL", () => {
  it("survivors take over a killed process's batch; its rerun is answered at once; each line billed once", async () => {
    const store = await pg.createDatabase();
    const base = { baseURL: emu.url, store, calls: CALLS, pollIntervalMs: POLL_MS };
    // The survivors' own lines take long enough that they are still polling when the victim's lease runs out.
    const survivorLatency = Array(CALLS).fill(4_000);
    const victimLatency = Array(CALLS).fill(1_500);
    const survivors = ["a-", "b-"].map((prefix) => runApp({ ...base, prefix, latency: survivorLatency }));
    let killedAt = 0;
    const victim = await runApp({
      ...base,
      prefix: "c-",
      latency: victimLatency,
      killWhen: (l) => {
        const hit = l.some((x) => x.includes('"type":"batchSubmitted"'));
        if (hit) killedAt = performance.now();
        return hit;
      },
    });
    expect(victim.killed).toBe(true);

    // The victim's results reach the store through a survivor (bounded wait: 2,000 looks, 5 ms apart).
    const ids = Array.from({ length: CALLS }, (_, i) => identity("c-", i, 1_500));
    const reader = await openStore(store);
    let storedAfterKill: number | undefined;
    for (let tries = 0; tries < 2_000 && storedAfterKill === undefined; tries++) {
      const found = await reader.find(ids);
      if (ids.every((id) => found.get(id)?.state === "done")) storedAfterKill = performance.now() - killedAt;
      else await new Promise((r) => setTimeout(r, 5));
    }
    await reader.close();
    expect(storedAfterKill).toBeDefined();

    const [a, b] = await Promise.all(survivors);
    for (const run of [a!, b!]) {
      expect(run.errors).toEqual(new Map());
      expect(run.ok.size).toBe(CALLS);
    }
    const resumed = [...a!.lines, ...b!.lines].filter((l) => l.includes('"type":"batchResumed"'));
    expect(resumed).toHaveLength(1);

    const rerun = await runApp({ ...base, prefix: "c-", latency: victimLatency });
    expect(rerun.errors).toEqual(new Map());
    for (let i = 0; i < CALLS; i++) {
      expect(rerun.ok.get(i)?.content).toBe(`echo: c-${i === CALLS - 1 ? "p0" : `p${i}`} [[latency:1500]]`);
      expect(rerun.ok.get(i)?.reads).toBe(0);
    }
    expect(emu.counters.batchesCreated).toBe(3);
    expect(emu.counters.linesExecuted).toBe(3 * CALLS);
  }, 60_000);
});
