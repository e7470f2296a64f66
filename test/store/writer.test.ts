// The write queue: grouped into one transaction per burst, in order, retried on a failing store without losing or
// reordering anything.
import { createClock } from "@sinonjs/fake-timers";
import { describe, expect, it } from "vitest";
import type { BatchIntent, BatchUpdate, Store } from "../../src/store/types.js";
import { StoreWriter } from "../../src/store/writer.js";

function fakeStore() {
  const log: string[] = [];
  let failures = 0;
  const store = {
    kind: "sqlite",
    location: "/fake.db",
    async recordIntent(intent: BatchIntent) {
      if (failures > 0 && failures--) throw new Error("store /fake.db: recording a batch failed: disk full");
      log.push(`intent ${intent.key}`);
    },
    async record(updates: readonly BatchUpdate[]) {
      if (failures > 0 && failures--) throw new Error("store /fake.db: recording progress failed: disk full");
      log.push(
        `record ${updates.map((u) => `${u.key}:${u.results?.length ?? 0}${u.snapshot ? "+s" : ""}${u.terminal ? "+end" : ""}`).join(",")}`,
      );
    },
    async release(_owner: string, keys?: readonly string[]) {
      if (failures > 0 && failures--) throw new Error("store /fake.db: releasing leases failed: disk full");
      log.push(`release ${keys?.join(",")}`);
    },
  } as unknown as Store;
  return { store, log, fail: (n: number) => (failures = n) };
}

const snapshot = { status: "in_progress", counts: { total: 2, completed: 1, failed: 0 } };

function writer(store: Store) {
  const clock = createClock(0);
  const warnings: string[] = [];
  let wrote = 0;
  const w = new StoreWriter(Promise.resolve(store), {
    clock,
    owner: "me",
    leaseMs: 1000,
    warn: (m) => warnings.push(m),
    wrote: () => wrote++,
  });
  return { w, clock, warnings, wrote: () => wrote };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("StoreWriter", () => {
  it("groups what is queued in one burst into one transaction, one update per batch", async () => {
    const f = fakeStore();
    const { w, wrote } = writer(f.store);
    w.update({ key: "b", results: [{ customId: "1", line: "x" }] });
    w.update({ key: "b", results: [{ customId: "2", line: "y" }] });
    w.update({ key: "c", snapshot });
    w.update({ key: "b", snapshot, terminal: true });
    await tick();
    expect(f.log).toEqual(["record b:2+s+end,c:0+s"]);
    expect(wrote()).toBe(1);
  });

  it("lets result lines wait for the read's snapshot instead of a transaction of their own", async () => {
    const f = fakeStore();
    const { w } = writer(f.store);
    w.update({ key: "b", results: [{ customId: "1", line: "x" }] });
    await tick();
    expect(f.log).toEqual([]);
    w.update({ key: "b", snapshot });
    await tick();
    expect(f.log).toEqual(["record b:1+s"]);
  });

  it("keeps an intent ahead of its batch's updates, and retries both in order after a failure", async () => {
    const f = fakeStore();
    const { w, clock, warnings } = writer(f.store);
    f.fail(1);
    const intent = w.intent({ key: "b", endpoint: "/v1/embeddings", model: "m", lines: [] });
    w.update({ key: "b", snapshot });
    // The upload is not held up by a failing store: the intent's promise resolves after its first attempt.
    await intent;
    await tick();
    expect(f.log).toEqual([]);
    expect(warnings).toEqual([
      "store /fake.db: recording a batch failed: disk full; 2 write(s) kept, retrying in 1000 ms",
    ]);
    clock.tick(1000);
    await tick();
    expect(f.log).toEqual(["intent b", "record b:0+s"]);
    expect(warnings.at(-1)).toBe("store /fake.db: writes succeed again");
  });

  it("flush writes everything; stop drops what a dead store could not take and says how much", async () => {
    const f = fakeStore();
    const { w } = writer(f.store);
    w.update({ key: "b", results: [{ customId: "1", line: "x" }] });
    await w.flush();
    expect(f.log).toEqual(["record b:1"]);
    f.fail(5);
    w.release(["b"]);
    await w.flush();
    expect(w.stop()).toBe(1);
  });
});
