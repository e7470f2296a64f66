import { createClock } from "@sinonjs/fake-timers";
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

function tracker() {
  const clock = createClock();
  const stop = new AbortController();
  const done: unknown[] = [];
  const t = new Tracker(clock, 100, stop.signal, (b) => done.push(b));
  const add = (f: ReturnType<typeof fakeBatch>) => t.add(f as unknown as Batch);
  return { clock, stop, t, add, done };
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

  it("drops a batch once its poll finished it, telling onDone; after the last one no timer is left", async () => {
    const { clock, add, t, done } = tracker();
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
    expect(done).toEqual([a, b]);
  });

  it("finishSettled waits for polls in flight", async () => {
    const { clock, add, t } = tracker();
    const slow = fakeBatch();
    slow.hold = true;
    add(slow);
    clock.tick(100);
    let finished = false;
    const finishing = t.finishSettled().then(() => (finished = true));
    await settle();
    expect(finished).toBe(false);
    slow.release();
    await finishing;
    expect(slow.polls).toBe(1);
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

  it("a tick firing while finishSettled polls a batch does not poll it again", async () => {
    const { clock, add, t } = tracker();
    const settled = fakeBatch();
    settled.unsettled = 0;
    settled.hold = true;
    add(settled);
    const finishing = t.finishSettled();
    await settle();
    expect(settled.polls).toBe(1);
    clock.tick(100);
    await settle();
    expect(settled.polls).toBe(1);
    settled.release();
    await finishing;
    expect(settled.polls).toBe(1);
    expect(settled.finished).toEqual([""]);
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
