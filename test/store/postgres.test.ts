// What only the PostgreSQL store does: clear errors at start (never showing the password), numbered migrations
// applied once however many processes start together.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator } from "../../src/emulator/index.js";
import { AutoBatcher, type AutoBatchEvent } from "../../src/index.js";
import { chat, KEY, waitFor } from "../helpers/client.js";
import { StoreError } from "../../src/store/errors.js";
import { openStore } from "../../src/store/open.js";
import { startPostgres, type PgServer } from "../helpers/postgres.js";

let server: PgServer;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(() => server?.stop());

describe("PostgreSQL store", () => {
  it("says clearly that an unreachable server cannot be reached, without the password", async () => {
    const err = await openStore("postgres://app:s3cret-pw@127.0.0.1:1/db").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    const message = (err as StoreError).message;
    expect(message).toMatch(/^store postgres:\/\/\*\*\*@127\.0\.0\.1:1\/db: cannot be reached: .*ECONNREFUSED/);
    expect(message).not.toContain("s3cret-pw");
    expect(JSON.stringify(err)).not.toContain("s3cret-pw");
  });

  it("names a missing database", async () => {
    await expect(openStore(server.url("no_such_db"))).rejects.toThrow(/no_such_db.*does not exist/);
  });

  it("migrates once when several processes open a new database together", async () => {
    const url = await server.createDatabase();
    const stores = await Promise.all([openStore(url), openStore(url), openStore(url)]);
    await Promise.all(stores.map((s) => s.close()));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query("SELECT version FROM autobatch_schema");
    await c.end();
    expect(rows).toEqual([{ version: 3 }]);
  });

  it("migrates a version 1 database to 3 (the index that finds other processes' unkeyed lines), keeping its rows", async () => {
    const url = await server.createDatabase();
    const first = await openStore(url);
    const line = { customId: "a", identity: "u:a", fingerprint: "F" };
    await first.recordIntent({ key: "b1", endpoint: "/v1/chat/completions", model: "m", lines: [line] }, "p1", 60_000);
    await first.close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("DROP INDEX autobatch_lines_adoptable, autobatch_lines_live");
    await c.query("UPDATE autobatch_schema SET version = 1");
    const again = await openStore(url);
    expect((await again.adopt([{ fingerprint: "F", identity: "u:r" }], "p2")).suspects.get("F")).toHaveLength(1);
    await again.close();
    const { rows } = await c.query(
      "SELECT version, (SELECT count(*)::int FROM pg_indexes WHERE indexname = 'autobatch_lines_adoptable') AS n FROM autobatch_schema",
    );
    await c.end();
    expect(rows).toEqual([{ version: 3, n: 1 }]);
  });

  it("migrates a version 2 database to 3 (one live line per named identity): of two lines of one key, the newer keeps it", async () => {
    const url = await server.createDatabase();
    const first = await openStore(url);
    const lines = [{ customId: "a", identity: "k:twice", fingerprint: "F" }];
    await first.recordIntent({ key: "b1", endpoint: "/v1/chat/completions", model: "m", lines }, "p1", 60_000);
    await first.record([{ key: "b1", results: [{ customId: "a", line: "first" }] }]);
    await first.close();
    // A version 2 database where two processes looked one key up at once and both recorded it.
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("DROP INDEX autobatch_lines_live");
    await c.query("UPDATE autobatch_schema SET version = 2");
    await c.query(
      "INSERT INTO autobatch_batches (key, endpoint, model, created_at) VALUES ('b2', '/v1/chat/completions', 'm', 0)",
    );
    await c.query(
      "INSERT INTO autobatch_lines (batch_key, custom_id, identity, fingerprint) VALUES ('b2', 'b', 'k:twice', 'F')",
    );
    await c.end();
    const again = await openStore(url);
    const found = await again.find(["k:twice", "u:a"]);
    expect(found.get("k:twice")).toMatchObject({ batchKey: "b2", customId: "b", state: "running" });
    expect(found.get("u:a")).toMatchObject({ batchKey: "b1", fingerprint: "", state: "done", result: "first" });
    const taken = await again.recordIntent(
      { key: "b3", endpoint: "/v1/chat/completions", model: "m", lines: [{ ...lines[0]!, customId: "c" }] },
      "p2",
      60_000,
    );
    expect(taken.get("c")).toMatchObject({ batchKey: "b2", customId: "b" });
    await again.close();
  });

  it("refuses a database written by a newer version", async () => {
    const url = await server.createDatabase();
    await (await openStore(url)).close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("UPDATE autobatch_schema SET version = 7");
    await c.end();
    await expect(openStore(url)).rejects.toThrow(/newer version of autobatch \(schema 7; this version knows up to 3\)/);
  });

  it("keeps answering calls from the provider when the server goes away mid-run, with warnings", async () => {
    const doomed = await startPostgres();
    const emu = await startEmulator({ apiKey: KEY, latencyMs: 300 });
    const events: AutoBatchEvent[] = [];
    const client = new AutoBatcher({
      apiKey: KEY,
      baseURL: emu.baseURL,
      batchWindowMs: 10,
      pollIntervalMs: 20,
      store: await doomed.createDatabase(),
      onEvent: (e) => events.push(e),
    });
    try {
      const pending = client.chat.completions.create(chat("outlives its store"));
      await waitFor(() => emu.counters.batchesCreated === 1, "the batch to be created");
      doomed.stop();
      expect((await pending).choices[0]!.message.content).toBe("echo: outlives its store");
      await client.close();
      const warnings = events.flatMap((e) => (e.type === "warning" ? [e.message] : []));
      expect(warnings.some((m) => /^store postgres:\/\/.*failed: .*; \d+ write\(s\) kept, retrying/.test(m))).toBe(
        true,
      );
      expect(warnings.some((m) => /write\(s\) could not be made before close/.test(m))).toBe(true);
    } finally {
      await emu.close();
    }
  }, 60_000);
});
