// The announcements of a batch's submission are what `autobatch run` waits for to read more input (it counts the
// calls buffered and submitting): one turn of the event loop after each, the batch no longer counts as submitting.
import { afterEach, describe, expect, it } from "vitest";
import { SLICE } from "../../src/core/turns.js";
import { chat, rejection, rig, waitFor, type Rig } from "../helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

/** `stats.submitting` one turn of the event loop after each `type` event. */
function submittingAfter(rig: Rig, type: "batchSubmitted" | "batchSubmitFailed"): number[] {
  const seen: number[] = [];
  const client = rig.client;
  const heard = rig.events.push.bind(rig.events);
  rig.events.push = (...events) => {
    for (const e of events) if (e.type === type) setImmediate(() => seen.push(client.stats.submitting));
    return heard(...events);
  };
  return seen;
}

describe("submission events", () => {
  it("a failed submission of a file rejected in several slices stops counting as submitting by the next turn", async () => {
    r = await rig({ batchSize: SLICE, batchWindowMs: 3_600_000 });
    r.emu.faults.add({ route: "POST /v1/files", status: 400, times: null });
    const seen = submittingAfter(r, "batchSubmitFailed");
    const calls = Array.from({ length: SLICE }, (_, i) => rejection(r!.client.chat.completions.create(chat(`c${i}`))));
    for (const err of await Promise.all(calls)) expect(err.status).toBe(400);
    await waitFor(() => seen.length > 0, "the event to be heard");
    expect(seen).toEqual([0]);
  });

  it("a created batch stops counting as submitting by the next turn", async () => {
    r = await rig({ batchSize: SLICE, batchWindowMs: 3_600_000 });
    const seen = submittingAfter(r, "batchSubmitted");
    const calls = Array.from({ length: SLICE }, (_, i) => r!.client.chat.completions.create(chat(`c${i}`)));
    await Promise.all(calls);
    await waitFor(() => seen.length > 0, "the event to be heard");
    expect(seen).toEqual([0]);
  });
});
