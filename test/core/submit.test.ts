import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fakeProvider, type Provider } from "../helpers/provider.js";
import { json, reset, text, type Seen } from "../helpers/server.js";
import { harness } from "./harness.js";

let p: Provider;
let h: ReturnType<typeof harness>;
beforeEach(async () => {
  p = await fakeProvider();
  // Three retries per request, each told to come back at once: the fake clock only has to move for the lookups.
  h = harness(p.url, { maxRetries: 3 });
});
afterEach(async () => {
  await h.transport.close();
  await p.close();
});

const is = (method: string, path: string) => (r: Seen) => r.method === method && r.url.split("?")[0] === path;
const fail500 = json(500, { error: { message: "list unavailable" } }, { "retry-after": "0" });
const emptyList = json(200, { object: "list", data: [], has_more: false });

/** Runs `work` to its end, moving the fake clock in steps with real I/O in between; bounded in steps. */
async function run<T>(work: Promise<T>, stepMs = 500, steps = 200): Promise<T> {
  let done = false;
  void work.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < steps && !done; i++) {
    await h.clock.tickAsync(stepMs);
    await new Promise((r) => setTimeout(r, 2));
  }
  return work;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) {
    await h.clock.tickAsync(500);
    await new Promise((r) => setTimeout(r, 2));
  }
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe("submit: nothing billed for nobody", () => {
  it("a lost answer to POST /batches whose lookups fail for a whole retry budget still finds the batch and tracks it", async () => {
    p.once(is("POST", "/v1/batches"), p.silently(reset));
    // Every lookup within the create's retry budget fails (4 attempts, each reading the list until it fails).
    for (let i = 0; i < 4; i++) p.once(is("GET", "/v1/batches"), fail500);
    const b = h.batch(2);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(b.id).toBe("batch_1");
    expect(p.batches.size).toBe(1);
    expect(h.outcomes.size).toBe(0);
  });

  it("a 2xx answer to POST /batches that is not JSON is looked up, not taken as a failure", async () => {
    p.once(is("POST", "/v1/batches"), p.silently(text(200, "<html>gateway says hi</html>")));
    const b = h.batch(1);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(b.id).toBe("batch_1");
    expect(p.batches.size).toBe(1);
  });

  it("a 2xx answer that is JSON but not a batch is looked up likewise", async () => {
    p.once(is("POST", "/v1/batches"), p.silently(json(200, { ok: true })));
    const b = h.batch(1);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(p.batches.size).toBe(1);
  });

  it("a batch list that lags behind the creation does not lead to a duplicate batch", async () => {
    p.once(is("POST", "/v1/batches"), p.silently(reset));
    p.once(is("GET", "/v1/batches"), emptyList);
    p.once(is("GET", "/v1/batches"), emptyList);
    const b = h.batch(2);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(p.batches.size).toBe(1);
    expect(p.requests("POST", "/v1/batches")).toHaveLength(1);
  });

  it("a batch that may exist but can never be looked up: its calls are rejected, and it is cancelled once found", async () => {
    p.once(is("POST", "/v1/batches"), p.silently(reset));
    // The create's budget (4 attempts) and the final lookup's (4 more) all fail; the cancel's lookup then succeeds.
    for (let i = 0; i < 8; i++) p.once(is("GET", "/v1/batches"), fail500);
    const b = h.batch(2);
    expect(await run(b.submit(h.stop.signal))).toBe(false);
    expect(h.outcomes.get("c0")?.ok).toBe(false);
    await until(() => p.batches.get("batch_1")?.status === "cancelled", "the cancel");
    expect(p.requests("POST", "/v1/batches/batch_1/cancel")).toHaveLength(1);
  });

  it("an ambiguous upload whose lookup fails once is found by the next lookup, not uploaded again", async () => {
    p.once(is("POST", "/v1/files"), p.silently(reset));
    p.once(is("GET", "/v1/files"), fail500);
    const b = h.batch(2);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(p.uploads).toHaveLength(1);
    expect(b.inputFileId).toBe("file-in-1");
  });

  it("a spare upload (an earlier attempt that landed after all) is deleted once the batch has its file", async () => {
    p.once(is("POST", "/v1/files"), p.silently(reset));
    p.once(is("GET", "/v1/files"), json(200, { object: "list", data: [] }));
    const b = h.batch(2);
    expect(await run(b.submit(h.stop.signal))).toBe(true);
    expect(p.uploads).toHaveLength(2);
    expect(b.inputFileId).toBe("file-in-2");
    expect([...p.deleted]).toEqual(["file-in-1"]);
  });
});
