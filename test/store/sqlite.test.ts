// What only the SQLite store does: refuse files that are not its own, and share one file between processes.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StoreError } from "../../src/store/errors.js";
import { openStore } from "../../src/store/open.js";
import { loadSqlite, type SqliteDatabase } from "../../src/store/sqlite-driver.js";

// The driver the store itself uses (node:sqlite or better-sqlite3), so these tests run on every Node.
const open = await loadSqlite("test");
const pragma = (db: SqliteDatabase, name: string) => Object.values(db.prepare(`PRAGMA ${name}`).get() as object)[0];

const dir = mkdtempSync(join(tmpdir(), "autobatch-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `f${n++}.db`);

describe("SQLite store", () => {
  it("creates the file in WAL mode, marked as an autobatch store", async () => {
    const f = file();
    await (await openStore(f)).close();
    const db = open(f);
    expect(pragma(db, "journal_mode")).toBe("wal");
    expect(pragma(db, "application_id")).toBe(0x41425354);
    expect(pragma(db, "user_version")).toBe(1);
    expect(pragma(db, "page_size")).toBe(16_384);
    db.close();
  });

  it("keeps the page size of a file made before (an older store's 4 kB pages) and works on it", async () => {
    const f = file();
    const made = open(f);
    made.exec("PRAGMA page_size = 4096");
    made.exec("PRAGMA journal_mode = WAL");
    made.close();
    const store = await openStore(f);
    await store.recordIntent(
      {
        key: "b",
        endpoint: "/v1/chat/completions",
        model: "m",
        lines: [{ customId: "a", identity: "k:a", fingerprint: "fp" }],
      },
      "p",
      60_000,
    );
    await store.record([{ key: "b", results: [{ customId: "a", line: "r".repeat(5_000) }] }]);
    await store.close();
    const again = await openStore(f);
    expect((await again.find(["k:a"])).get("k:a")).toMatchObject({ state: "done", result: "r".repeat(5_000) });
    await again.close();
    const db = open(f);
    expect(pragma(db, "page_size")).toBe(4096);
    db.close();
  });

  it("refuses a file that is not a SQLite database, naming it", async () => {
    const f = file();
    writeFileSync(f, "this is not a database, just some text that is long enough to look like a header".repeat(20));
    const err = await openStore(f).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toContain(f);
    expect((err as StoreError).message).toMatch(/not a readable SQLite database/);
  });

  it("refuses another application's SQLite database and leaves it untouched", async () => {
    const f = file();
    const db = open(f);
    db.exec("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('keep me')");
    db.close();
    await expect(openStore(f)).rejects.toThrow(`store ${f}: is a SQLite database but not an autobatch store`);
    const again = open(f);
    expect(again.prepare("SELECT t FROM notes").get()).toEqual({ t: "keep me" });
    expect(pragma(again, "user_version")).toBe(0);
    again.close();
  });

  it("refuses a store written by a newer version", async () => {
    const f = file();
    await (await openStore(f)).close();
    const db = open(f);
    db.exec("PRAGMA user_version = 99");
    db.close();
    await expect(openStore(f)).rejects.toThrow(/newer version of autobatch \(schema 99; this version knows up to 1\)/);
  });

  it("names the file it cannot create", async () => {
    const f = join(dir, "missing-folder", "x.db");
    await expect(openStore(f)).rejects.toThrow(`store ${f}: cannot be opened`);
  });

  it("refuses URLs of other kinds instead of making a file of them", async () => {
    await expect(openStore("mysql://user:pw@host/db")).rejects.toThrow(
      /mysql:\/\/.*: is a URL of a kind no store speaks/,
    );
    await expect(openStore("mysql://user:pw@host/db")).rejects.not.toThrow(/pw/);
  });

  it("is shared safely by two processes writing at once", async () => {
    const f = file();
    const script = `
      const { openStore } = await import(${JSON.stringify(join(process.cwd(), "src/store/open.ts"))});
      const s = await openStore(process.argv[1]);
      const tag = process.argv[2];
      for (let i = 0; i < 50; i++) {
        await s.recordIntent({ key: tag + i, endpoint: "/v1/embeddings", model: "m",
          lines: [{ customId: tag + "-" + i, identity: "k:" + tag + i, fingerprint: "f" }] }, tag, 60000);
        await s.record([{ key: tag + i, results: [{ customId: tag + "-" + i, line: "r" }], terminal: true }]);
      }
      await s.close();`;
    const run = (tag: string) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, f, tag], {
          stdio: ["ignore", "ignore", "pipe"],
        });
        let err = "";
        child.stderr.on("data", (d: Buffer) => (err += d));
        child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(err))));
      });
    await Promise.all([run("x"), run("y")]);
    const s = await openStore(f);
    const ids = [...Array(50).keys()].flatMap((i) => [`k:x${i}`, `k:y${i}`]);
    const found = await s.find(ids);
    expect(found.size).toBe(100);
    expect([...found.values()].every((l) => l.state === "done")).toBe(true);
    await s.close();
  });
});
