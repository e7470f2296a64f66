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
    await s.recordIntent(intent("b2", ["a0", "a1"], keyed), "p1", LONG);
    const misses = Array.from({ length: 3_000 }, (_, i) => `f:none-${i}:0`);
    const found = await s.find([...misses, ...odd, odd[0]!]);
    expect([...found.keys()].sort()).toEqual([...odd].sort());
    expect(found.get(odd[0]!)).toMatchObject({ batchKey: "b2", customId: "a0", state: "running" });
    expect(found.get(odd[1]!)).toMatchObject({ batchKey: "b2", state: "running" });
    expect(found.get(odd[2]!)).toMatchObject({ batchKey: "b1", state: "lost" });
    expect((await s.find([])).size).toBe(0);
  });

  it("takes one custom_id in a later batch (a line sent again) and finds the newer line", async () => {
    const s = await open(await spec());
    await s.recordIntent(intent("b1", ["a"]), "p1", LONG);
    await s.recordIntent(intent("b2", ["a"]), "p1", LONG);
    await s.record([{ key: "b2", results: [{ customId: "a", line: "from b2" }] }]);
    expect((await s.find(["f:fp-a:0"])).get("f:fp-a:0")).toMatchObject({ batchKey: "b2", result: "from b2" });
  });

  it("records an intent whole or not at all", async () => {
    const s = await open(await spec());
    await expect(s.recordIntent(intent("b1", ["a", "a"]), "p1", 0)).rejects.toThrow(/recording a batch failed/);
    expect((await s.find(["f:fp-a:0"])).size).toBe(0);
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
