// A call waiting to adopt an orphan (requestIdentity "adopt"): when it keeps waiting on the batches that may hold
// one. Adoption end to end: client-store.test.ts (one process), serve-crash.test.ts (serve SIGKILLed), and the store
// contract (contract.test.ts).
import { describe, expect, it } from "vitest";
import type { Call } from "../../src/core/call.js";
import { Seeker } from "../../src/store/adoption.js";

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
