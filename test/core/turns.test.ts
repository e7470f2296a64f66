// The turn budget is one for the whole process: work from several sources at once (result files read together, a
// rejection pass beside them) adds up to at most SLICE units per turn of the event loop.
import { describe, expect, it } from "vitest";
import { SLICE, spend } from "../../src/core/turns.js";

describe("turn budget", () => {
  it("shares SLICE units per turn among everything spending at once, and lets each finish", async () => {
    const done = [0, 0, 0];
    let most = 0;
    let last = 0;
    let turns = 0;
    let going = true;
    const total = () => done[0]! + done[1]! + done[2]!;
    const spin = () => {
      if (!going) return;
      most = Math.max(most, total() - last);
      last = total();
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const worker = async (w: number, units: number) => {
      for (let i = 0; i < units; i++) {
        done[w]!++;
        const wait = spend(1);
        if (wait) await wait;
      }
    };
    await Promise.all([worker(0, 3 * SLICE), worker(1, 3 * SLICE), worker(2, 3 * SLICE)]);
    going = false;
    most = Math.max(most, total() - last);
    expect(done).toEqual([3 * SLICE, 3 * SLICE, 3 * SLICE]);
    // Each worker may do one unit past the budget before it learns the turn is spent.
    expect(most).toBeLessThanOrEqual(SLICE + 2);
    expect(turns).toBeGreaterThanOrEqual(8);
  });

  it("goes on at once while the turn's budget lasts", async () => {
    await new Promise((r) => setImmediate(r));
    expect(spend(SLICE - 1)).toBeUndefined();
    expect(spend(1)).toBeInstanceOf(Promise);
  });
});
