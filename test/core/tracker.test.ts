import { createClock } from "@sinonjs/fake-timers";
import PQueue from "p-queue";
import { describe, expect, it } from "vitest";
import type { Batch } from "../../src/core/batch.js";
import { Tracker } from "../../src/core/tracker.js";

/** A stand-in for a Batch: counts its polls; `hold` keeps a poll in flight until released. */
function fakeBatch() {
  const f = {
    polls: 0,
    done: false,
    unsettled: 1,
    hold: false,
    finished: [] as string[],
    release: () => undefined as void,
    poll: () => {
      f.polls++;
      if (!f.hold) return Promise.resolve();
      return new Promise<void>((r) => {
        f.release = r;
      });
    },
    finish: (why: string) => {
      f.finished.push(why);
      f.done = true;
    },
  };
  return f;
}

function tracker(concurrency = 8) {
  const clock = createClock();
  const queue = new PQueue({ concurrency });
  const stop = new AbortController();
  const t = new Tracker(queue, clock, 100, stop.signal);
  const add = (f: ReturnType<typeof fakeBatch>) => t.add(f as unknown as Batch);
  return { clock, queue, stop, t, add };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("Tracker", () => {
  it("holds no timer while it tracks nothing, and one timer for any number of batches", () => {
    const { clock, add } = tracker();
    expect(clock.countTimers()).toBe(0);
    for (let i = 0; i < 5; i++) add(fakeBatch());
    expect(clock.countTimers()).toBe(1);
  });

  it("one tick polls every tracked batch once", async () => {
    const { clock, add } = tracker();
    const batches = [fakeBatch(), fakeBatch(), fakeBatch()];
    for (const b of batches) add(b);
    clock.tick(99);
    expect(batches.map((b) => b.polls)).toEqual([0, 0, 0]);
    clock.tick(1);
    await settle();
    expect(batches.map((b) => b.polls)).toEqual([1, 1, 1]);
    clock.tick(100);
    await settle();
    expect(batches.map((b) => b.polls)).toEqual([2, 2, 2]);
  });

  it("skips a batch whose poll is still in flight, and polls it again once that one returns", async () => {
    const { clock, add } = tracker();
    const slow = fakeBatch();
    slow.hold = true;
    const quick = fakeBatch();
    add(slow);
    add(quick);
    for (let i = 0; i < 3; i++) {
      clock.tick(100);
      await settle();
    }
    expect(slow.polls).toBe(1);
    expect(quick.polls).toBe(3);
    slow.hold = false;
    slow.release();
    await settle();
    clock.tick(100);
    await settle();
    expect(slow.polls).toBe(2);
  });

  it("drops a batch once its poll finished it; after the last one no timer is left", async () => {
    const { clock, add, t } = tracker();
    const a = fakeBatch();
    const b = fakeBatch();
    add(a);
    add(b);
    a.poll = () => {
      a.polls++;
      a.done = true;
      return Promise.resolve();
    };
    clock.tick(100);
    await settle();
    expect(t.running).toBe(1);
    b.poll = () => {
      b.polls++;
      b.done = true;
      return Promise.resolve();
    };
    clock.tick(100);
    await settle();
    expect(t.running).toBe(0);
    expect(clock.countTimers()).toBe(0);
    expect([a.polls, b.polls]).toEqual([1, 2]);
  });

  it("polls through the shared queue, so its concurrency caps polls in flight", async () => {
    const { clock, add, queue } = tracker(2);
    const batches = [fakeBatch(), fakeBatch(), fakeBatch()];
    for (const b of batches) {
      b.hold = true;
      add(b);
    }
    clock.tick(100);
    await settle();
    expect(batches.map((b) => b.polls)).toEqual([1, 1, 0]);
    expect(queue.pending).toBe(2);
    batches[0]!.release();
    await settle();
    expect(batches[2]!.polls).toBe(1);
  });

  it("finishSettled polls each batch whose callers all have results, then finishes it", async () => {
    const { add, t } = tracker();
    const settled = fakeBatch();
    settled.unsettled = 0;
    const waiting = fakeBatch();
    add(settled);
    add(waiting);
    await t.finishSettled();
    expect(settled.polls).toBe(1);
    expect(settled.finished).toEqual([""]);
    expect(waiting.polls).toBe(0);
    expect(waiting.done).toBe(false);
  });

  it("after stop, no tick fires", async () => {
    const { clock, add, t } = tracker();
    const b = fakeBatch();
    add(b);
    t.stop();
    expect(clock.countTimers()).toBe(0);
    clock.tick(1_000);
    await settle();
    expect(b.polls).toBe(0);
  });
});
