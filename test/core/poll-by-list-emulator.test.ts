// Poll by listing against the emulator, both flavours: one tick over 150 running batches reads two list pages and
// no batch by id. The emulator's lines take an hour, so every batch stays running; the client's clock is fake.
import { createClock } from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { rig, waitFor, type Rig } from "../helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const RUNNING = 150;

describe.each(["openai", "doubleword"] as const)("poll by listing on the %s emulator", (flavor) => {
  it(`${RUNNING} running batches: one tick reads ⌈${RUNNING} / 100⌉ list pages and none by id`, async () => {
    const clock = createClock();
    r = await rig({ clock, batchSize: 1, pollIntervalMs: 1_000 }, { flavor, latencyMs: 3_600_000 });
    const rr = r;
    for (let i = 0; i < RUNNING; i++)
      rr.client.chat.completions.create({ model: "m", messages: [{ role: "user", content: `q${i}` }] }).catch(() => {});
    await waitFor(() => rr.client.stats.runningBatches === RUNNING, "every batch created", 20_000);
    const requests = () => ({
      list: rr.emu.counters.requests["GET /v1/batches"] ?? 0,
      byId: rr.emu.counters.requests["GET /v1/batches/:id"] ?? 0,
    });
    const before = requests();
    const progress = () => rr.events.filter((e) => e.type === "batchProgress").length;
    await clock.tickAsync(1_000);
    // Each batch went from validating to in_progress, so each poll tells of it once.
    await waitFor(() => progress() === RUNNING, "a status for every batch");
    const after = requests();
    expect(after.list - before.list).toBe(Math.ceil(RUNNING / 100));
    expect(after.byId - before.byId).toBe(0);
  }, 30_000);
});
