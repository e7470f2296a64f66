// One contract, two stores: every test here runs against a SQLite file and against a real PostgreSQL server.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import type { BatchIntent, Store } from "../../src/store/types.js";
import { startPostgres, type PgServer } from "../helpers/postgres.js";

let pgServer: PgServer;
const dir = mkdtempSync(join(tmpdir(), "autobatch-store-"));
let n = 0;

beforeAll(async () => {
  pgServer = await startPostgres();
}, 60_000);
afterAll(() => {
  pgServer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const kinds = {
  sqlite: async () => join(dir, `s${n++}.db`),
  postgres: async () => pgServer.createDatabase(),
};

const LONG = 60_000;

function intent(key: string, ids: string[], identity = (id: string) => `f:fp-${id}:0`): BatchIntent {
  return {
    key,
    endpoint: "/v1/chat/completions",
    model: "m",
    lines: ids.map((id) => ({ customId: id, identity: identity(id), fingerprint: `fp-${id}` })),
  };
}

describe.each(Object.entries(kinds))("store contract: %s", (kind, spec) => {
  const opened: Store[] = [];
  const open = async (s: string) => {
    const store = await openStore(s);
    opened.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it("names its kind and location", async () => {
    const s = await open(await spec());
    expect(s.kind).toBe(kind);
    expect(s.location).toMatch(kind === "sqlite" ? /\.db$/ : /^postgres:\/\/.*127\.0\.0\.1/);
  });

  it("finds a recorded line as running, then done with its result, then lost lines after the end", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a", "b"]), "p1", LONG);
    let found = await s.find(["f:fp-a:0", "f:fp-b:0", "f:nope:0"]);
    expect(found.size).toBe(2);
    expect(found.get("f:fp-a:0")).toMatchObject({
      customId: "a",
      batchKey: "b1",
      state: "running",
      fingerprint: "fp-a",
    });
    expect(found.get("f:fp-a:0")?.batchId).toBeUndefined();

    const snapshot = { batchId: "batch_1", status: "in_progress", counts: { total: 2, completed: 1, failed: 0 } };
    await s.record([{ key: "b1", snapshot, results: [{ customId: "a", line: '{"custom_id":"a"}' }] }]);
    found = await s.find(["f:fp-a:0", "f:fp-b:0"]);
    expect(found.get("f:fp-a:0")).toMatchObject({ state: "done", result: '{"custom_id":"a"}', batchId: "batch_1" });
    expect(found.get("f:fp-b:0")).toMatchObject({ state: "running", batchId: "batch_1" });

    await s.record([{ key: "b1", terminal: true }]);
    found = await s.find(["f:fp-a:0", "f:fp-b:0"]);
    expect(found.get("f:fp-a:0")?.state).toBe("done");
    expect(found.get("f:fp-b:0")?.state).toBe("lost");
  });

  it("keeps the first result of a line and ignores results for unknown batches", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a"]), "p1", LONG);
    await s.record([
      { key: "b1", results: [{ customId: "a", line: "first" }] },
      { key: "b1", results: [{ customId: "a", line: "second" }] },
      { key: "nope", results: [{ customId: "a", line: "third" }], terminal: true },
    ]);
    expect((await s.find(["f:fp-a:0"])).get("f:fp-a:0")?.result).toBe("first");
  });

  it("forgets a retried line's result: lost here, whatever was stored for it first", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a", "b"]), "p1", LONG);
    await s.record([
      { key: "b1", results: [{ customId: "a", line: '{"status":503}' }], retried: ["a"] },
      { key: "b1", results: [{ customId: "b", line: '{"status":200}' }] },
    ]);
    const found = await s.find(["f:fp-a:0", "f:fp-b:0"]);
    expect(found.get("f:fp-a:0")).toMatchObject({ state: "lost" });
    expect(found.get("f:fp-a:0")?.result).toBeUndefined();
    expect(found.get("f:fp-b:0")).toMatchObject({ state: "done", result: '{"status":200}' });
  });

  it("returns the newest line of an identity: a new submission after a lost one", async () => {
    const s = await open(await spec());
    const same = () => "k:key-1";
    await s.recordIntent(intent("b1", ["a"], same), "p1", LONG);
    await s.record([{ key: "b1", terminal: true }]);
    await s.recordIntent(intent("b2", ["a2"], same), "p1", LONG);
    expect((await s.find(["k:key-1"])).get("k:key-1")).toMatchObject({ customId: "a2", state: "running" });
  });

  it("looks up thousands of identities at once, whatever their characters, each to its newest line", async () => {
    const s = await open(await spec());
    const odd = ['k:quote " and \\ backslash', "k:ünïcödé 😀", `k:${"x".repeat(500)}`, "k:[1,2]", "k:'"];
    const keyed = (id: string) => odd[Number(id.slice(1))] ?? `k:${id}`;
    await s.recordIntent(intent("b1", ["a0", "a1", "a2", "a3", "a4"], keyed), "p1", LONG);
    await s.record([{ key: "b1", results: [{ customId: "a0", line: "old" }], terminal: true }]);
    await s.recordIntent(intent("b2", ["a1", "a2"], keyed), "p1", LONG);
    const misses = Array.from({ length: 3_000 }, (_, i) => `f:none-${i}:0`);
    const found = await s.find([...misses, ...odd, odd[0]!]);
    expect([...found.keys()].sort()).toEqual([...odd].sort());
    expect(found.get(odd[0]!)).toMatchObject({ batchKey: "b1", customId: "a0", state: "done", result: "old" });
    expect(found.get(odd[1]!)).toMatchObject({ batchKey: "b2", customId: "a1", state: "running" });
    expect(found.get(odd[2]!)).toMatchObject({ batchKey: "b2", state: "running" });
    expect(found.get(odd[3]!)).toMatchObject({ batchKey: "b1", state: "lost" });
    expect((await s.find([])).size).toBe(0);
  });

  it("takes one custom_id in a later batch (a line sent again) and finds the newer line", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a"]), "p1", LONG);
    await s.record([{ key: "b1", retried: ["a"] }]);
    expect((await s.recordIntent(intent("b2", ["a"]), "p1", LONG)).size).toBe(0);
    await s.record([{ key: "b2", results: [{ customId: "a", line: "from b2" }] }]);
    expect((await s.find(["f:fp-a:0"])).get("f:fp-a:0")).toMatchObject({ batchKey: "b2", result: "from b2" });
  });

  it("records one live line per named identity: a later intent gets the line that holds it back, by custom_id", async () => {
    const s = await open(await spec());
    const key = (id: string) => (id.startsWith("x") ? "k:x" : id.startsWith("u") ? `u:${id}` : `f:fp-${id}:0`);
    expect((await s.recordIntent(intent("b1", ["x1", "f", "u1"], key), "p1", LONG)).size).toBe(0);
    const taken = await s.recordIntent(intent("b2", ["x2", "f", "g", "u2"], key), "p2", LONG);
    expect([...taken.keys()].sort()).toEqual(["f", "x2"]);
    expect(taken.get("x2")).toMatchObject({ customId: "x1", batchKey: "b1", state: "running", fingerprint: "fp-x1" });
    expect(taken.get("f")).toMatchObject({ customId: "f", batchKey: "b1", state: "running" });
    // The lines not recorded are not b2's: a claim of b2 finds only the others.
    await s.release("p2");
    expect((await s.claim("p3", LONG, 10))[0]?.lines.map((l) => l.customId)).toEqual(["g", "u2"]);

    await s.record([{ key: "b1", results: [{ customId: "x1", line: "x-result" }], terminal: true }]);
    const later = await s.recordIntent(intent("b3", ["x3", "f"], key), "p1", LONG);
    // Answered: held still (a replay); lost with its batch's end: free again.
    expect([...later.keys()]).toEqual(["x3"]);
    expect(later.get("x3")).toMatchObject({ state: "done", result: "x-result" });
    expect((await s.find(["f:fp-f:0"])).get("f:fp-f:0")).toMatchObject({ batchKey: "b3", state: "running" });
  });

  it("gives a named identity to one of several intents recording it at once through separate connections", async () => {
    const url = await spec();
    const handles = await Promise.all([open(url), open(url), open(url)]);
    const same = () => "k:contended";
    const taken = await Promise.all(
      handles.map((h, i) => h.recordIntent(intent(`b${i}`, [`l${i}`], same), `p${i}`, LONG)),
    );
    const recorded = taken.filter((t) => t.size === 0);
    expect(recorded.length).toBe(1);
    const holder = (await handles[0]!.find(["k:contended"])).get("k:contended")!;
    for (const t of taken.filter((x) => x.size))
      expect([...t.values()][0]).toMatchObject({ customId: holder.customId });
  });

  it("records intents sharing identities in opposite orders at once without a deadlock, each identity once", async () => {
    const url = await spec();
    const [h1, h2] = await Promise.all([open(url), open(url)]);
    for (let round = 0; round < 10; round++) {
      const ids = Array.from({ length: 20 }, (_, i) => `k:r${round}-${i}`);
      const mine = (order: string[], key: string) => ({
        ...intent(key, []),
        lines: order.map((identity, i) => ({ customId: `${key}-${i}`, identity, fingerprint: "F" })),
      });
      const taken = await Promise.all([
        h1.recordIntent(mine(ids, `x${round}`), "p1", LONG),
        h2.recordIntent(mine([...ids].reverse(), `y${round}`), "p2", LONG),
      ]);
      expect(taken[0].size + taken[1].size).toBe(ids.length);
      const found = await h1.find(ids);
      for (const id of ids) expect(found.get(id)?.state).toBe("running");
    }
  });

  it("records an intent whole or not at all", async () => {
    const s = await open(await spec());
    let k = 0;
    const twice = intent("b1", ["a", "a"], () => `k:${k++}`);
    await expect(s.recordIntent(twice, "p1", 0)).rejects.toThrow(/recording a batch failed/);
    expect((await s.find(["k:0"])).size).toBe(0);
    expect(await s.claim("p2", LONG, 10)).toEqual([]);
  });

  it("hands an unfinished batch over only when its lease has expired or was released", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("held", ["a"]), "p1", LONG);
    await s.recordIntent(intent("expired", ["b", "c"]), "p1", 0);
    const snapshot = {
      batchId: "batch_x",
      fileId: "file_in",
      status: "in_progress",
      counts: { total: 2, completed: 1, failed: 0 },
      output: { fileId: "file_out", next: 1 },
    };
    await s.record([{ key: "expired", snapshot, results: [{ customId: "b", line: "B" }] }]);

    const taken = await s.claim("p2", LONG, 10);
    expect(taken.map((b) => b.key)).toEqual(["expired"]);
    expect(taken[0]).toMatchObject({ endpoint: "/v1/chat/completions", model: "m", snapshot });
    expect(taken[0]!.createdAt).toBeGreaterThan(0);
    expect(taken[0]!.lines).toEqual([
      { customId: "b", identity: "f:fp-b:0", fingerprint: "fp-b", result: "B" },
      { customId: "c", identity: "f:fp-c:0", fingerprint: "fp-c" },
    ]);
    // p2 holds it now; nobody else gets it, nor the batch p1 still holds.
    expect(await s.claim("p3", LONG, 10)).toEqual([]);

    await s.release("p1");
    expect((await s.claim("p3", LONG, 10)).map((b) => b.key)).toEqual(["held"]);
    await s.release("p2", ["expired"]);
    expect((await s.claim("p4", LONG, 10)).map((b) => b.key)).toEqual(["expired"]);
  });

  it("renews only the owner's leases on unfinished batches", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a"]), "p1", 0);
    await s.recordIntent(intent("b2", ["b"]), "p1", 0);
    await s.recordIntent(intent("b3", ["c"]), "p2", 0);
    await s.record([{ key: "b2", terminal: true }]);
    expect(await s.renew("p1", LONG)).toBe(1);
    expect((await s.claim("p3", LONG, 10)).map((b) => b.key)).toEqual(["b3"]);
  });

  it("claims at most `limit` batches, oldest first, and never an ended one", async () => {
    const s = await open(await spec());
    for (const k of ["b1", "b2", "b3"]) await s.recordIntent(intent(k, [`${k}-a`]), "p1", 0);
    await s.record([{ key: "b1", terminal: true }]);
    expect((await s.claim("p2", LONG, 1)).map((b) => b.key)).toEqual(["b2"]);
    expect((await s.claim("p3", LONG, 5)).map((b) => b.key)).toEqual(["b3"]);
  });

  it("never hands one batch to two owners claiming at once through separate connections", async () => {
    const url = await spec();
    const handles = await Promise.all([open(url), open(url), open(url)]);
    for (let i = 0; i < 12; i++) await handles[0]!.recordIntent(intent(`b${i}`, [`l${i}`]), "dead", 0);
    const results = await Promise.all(handles.map((h, i) => h.claim(`p${i}`, LONG, 5)));
    const keys = results.flat().map((b) => b.key);
    expect(keys.length).toBe(12);
    expect(new Set(keys).size).toBe(12);
  });

  it("purges batches that ended longer ago than the retention, with their lines", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("old", ["a"]), "p1", LONG);
    await s.recordIntent(intent("open", ["b"]), "p1", LONG);
    await s.record([{ key: "old", terminal: true }]);
    expect(await s.purge(3_600_000)).toBe(0);
    // A negative age reaches into the future: everything that has ended is older than that.
    expect(await s.purge(-60_000)).toBe(1);
    const found = await s.find(["f:fp-a:0", "f:fp-b:0"]);
    expect([...found.keys()]).toEqual(["f:fp-b:0"]);
  });

  describe("orphans", () => {
    /** A batch of unkeyed lines open to adoption (requestIdentity "adopt"): `u:<custom_id>`, the fingerprint beside. */
    const unkeyed = (key: string, ids: string[], fp = "F"): BatchIntent => ({
      ...intent(key, []),
      lines: ids.map((id) => ({ customId: id, identity: `u:${id}`, fingerprint: fp })),
    });
    const want = (...ids: string[]) => ids.map((id) => ({ fingerprint: "F", identity: `u:${id}` }));
    const adoptedIds = (a: { adopted: Map<string, { customId: string }> }) =>
      [...a.adopted].map(([identity, l]) => `${identity}=${l.customId}`);

    it("orphans the running unkeyed lines of a batch taken over from another owner; each is adopted once", async () => {
      const s = await open(await spec());
      await s.recordIntent(unkeyed("b1", ["x", "done", "y"]), "dead", 0);
      await s.recordIntent(unkeyed("b2", ["other"], "G"), "dead", 0);
      // Read before the takeover: its caller most likely had it.
      await s.record([{ key: "b1", results: [{ customId: "done", line: "D" }] }]);
      const before = await s.adopt(want("r0"), "p2");
      expect(before.adopted.size).toBe(0);
      expect(before.suspects.get("F")).toEqual([{ key: "b1", leaseUntil: expect.any(Number), expired: true }]);

      expect((await s.claim("p2", LONG, 10)).map((b) => b.key)).toEqual(["b1", "b2"]);
      const first = await s.adopt(want("r1", "r2", "r3"), "p3");
      expect(adoptedIds(first)).toEqual(["u:r1=x", "u:r2=y"]);
      expect(first.adopted.get("u:r1")).toMatchObject({ batchKey: "b1", state: "running" });
      expect(first.suspects.size).toBe(0);
      expect((await s.adopt(want("r4"), "p3")).adopted.size).toBe(0);

      // The adopter waits under its own identity, like any call.
      await s.record([{ key: "b1", results: [{ customId: "x", line: "X" }] }]);
      expect((await s.find(["u:r1", "u:r2"])).get("u:r1")).toMatchObject({ customId: "x", state: "done", result: "X" });
      expect(adoptedIds(await s.adopt([{ fingerprint: "G", identity: "u:g" }], "p3"))).toEqual(["u:g=other"]);
    });

    it("gives a done orphan with its result, never a lost one", async () => {
      const s = await open(await spec());
      await s.recordIntent(unkeyed("b1", ["x", "y"]), "dead", 0);
      await s.claim("p2", LONG, 10);
      await s.record([{ key: "b1", results: [{ customId: "y", line: "Y" }], terminal: true }]);
      const got = await s.adopt(want("r1", "r2"), "p3");
      expect(adoptedIds(got)).toEqual(["u:r1=y"]);
      expect(got.adopted.get("u:r1")).toMatchObject({ state: "done", result: "Y" });
    });

    it("orphans the lines of a released batch once claimed, but never keyed or named lines", async () => {
      const s = await open(await spec());
      const b1 = unkeyed("b1", ["x"]);
      // A keyed line, a fingerprint identity, and an unkeyed line with no fingerprint (requestIdentity "keys").
      b1.lines.push(
        { customId: "k", identity: "k:key-1", fingerprint: "F" },
        { customId: "f", identity: "f:fp-f:0", fingerprint: "" },
        { customId: "u", identity: "u:u", fingerprint: "" },
      );
      await s.recordIntent(b1, "p1", LONG);
      await s.release("p1");
      await s.claim("p2", LONG, 10);
      expect(adoptedIds(await s.adopt(want("r1"), "p3"))).toEqual(["u:r1=x"]);
      const found = await s.find(["k:key-1", "f:fp-f:0", "u:u"]);
      expect(["k:key-1", "f:fp-f:0", "u:u"].map((id) => found.get(id)?.customId)).toEqual(["k", "f", "u"]);
    });

    it("never orphans a line of a live batch: its holder's own, or renewed; claimed back by its holder, still not", async () => {
      const s = await open(await spec());
      await s.recordIntent(unkeyed("live", ["x"]), "p1", LONG);
      await s.recordIntent(unkeyed("late", ["y"]), "p1", 0);
      // A slow renewal: the holder takes its own batch back, and its callers still wait for it.
      expect((await s.claim("p1", LONG, 10)).map((b) => b.key)).toEqual(["late"]);
      const seen = await s.adopt(want("r1"), "p2");
      expect(seen.adopted.size).toBe(0);
      const suspects = seen.suspects.get("F")!;
      expect(suspects.map((x) => [x.key, x.expired]).sort()).toEqual([
        ["late", false],
        ["live", false],
      ]);
      // Its holder sees none: its own callers wait for its lines.
      expect((await s.adopt(want("r2"), "p1")).suspects.size).toBe(0);
      await new Promise((r) => setTimeout(r, 5));
      await s.renew("p1", LONG);
      const renewed = (await s.adopt(want("r3"), "p2")).suspects.get("F")!;
      for (const x of renewed) expect(x.leaseUntil).toBeGreaterThan(suspects.find((y) => y.key === x.key)!.leaseUntil);
    });

    it("sees orphans and suspects written through another connection after finding none", async () => {
      const url = await spec();
      const [mine, other] = await Promise.all([open(url), open(url)]);
      expect((await mine.adopt(want("r0"), "p1")).suspects.size).toBe(0);
      await other.recordIntent(unkeyed("b1", ["x", "y"]), "p2", LONG);
      expect((await mine.adopt(want("r1"), "p1")).suspects.get("F")).toHaveLength(1);
      await other.release("p2");
      await other.claim("p3", LONG, 10);
      expect(adoptedIds(await mine.adopt(want("r2"), "p1"))).toEqual(["u:r2=x"]);
      await other.record([{ key: "b1", terminal: true }]);
      expect(await mine.adopt(want("r3"), "p1")).toEqual({ adopted: new Map(), suspects: new Map() });
      await other.recordIntent(unkeyed("b2", ["z"]), "dead", 0);
      await other.claim("p3", LONG, 10);
      expect(adoptedIds(await mine.adopt(want("r4"), "p1"))).toEqual(["u:r4=z"]);
    });

    it("gives one orphan to one of several adopters at once through separate connections", async () => {
      const url = await spec();
      const handles = await Promise.all([open(url), open(url), open(url)]);
      await handles[0]!.recordIntent(unkeyed("b1", ["l0", "l1", "l2", "l3", "l4"]), "dead", 0);
      await handles[0]!.claim("holder", LONG, 10);
      const results = await Promise.all(handles.map((h, i) => h.adopt(want(`p${i}a`, `p${i}b`, `p${i}c`), `p${i}`)));
      const lines = results.flatMap((r) => [...r.adopted.values()].map((l) => l.customId));
      expect(lines.sort()).toEqual(["l0", "l1", "l2", "l3", "l4"]);
    });
  });

  it("keeps everything across close and reopen", async () => {
    const url = await spec();
    const first = await openStore(url);
    await first.recordIntent(intent("b1", ["a"]), "p1", 0);
    await first.record([{ key: "b1", results: [{ customId: "a", line: "A" }] }]);
    await first.close();
    await expect(first.find(["f:fp-a:0"])).rejects.toThrow(/closed/);
    const second = await open(url);
    expect((await second.find(["f:fp-a:0"])).get("f:fp-a:0")?.result).toBe("A");
    expect((await second.claim("p2", LONG, 10)).map((b) => b.key)).toEqual(["b1"]);
  });
});
