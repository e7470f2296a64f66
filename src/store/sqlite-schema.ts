// A SQLite store's schema: the version in `PRAGMA user_version`, the file marked as ours by `PRAGMA application_id`,
// and the migration a process runs when it opens the file, safe against another process opening it at the same time.
import { realClock, sleep } from "../internal/clock.js";
import { StoreError } from "./errors.js";
import type { SqliteDatabase } from "./sqlite-driver.js";

/** "ABST" as a 32-bit integer: the file's `application_id`. */
const APPLICATION_ID = 0x41425354;
const MIGRATIONS = [
  `CREATE TABLE batches (
     key TEXT PRIMARY KEY,
     endpoint TEXT NOT NULL,
     model TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     snapshot TEXT,
     terminal INTEGER NOT NULL DEFAULT 0,
     finished_at INTEGER,
     lease_owner TEXT,
     lease_until INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX batches_open ON batches (terminal, lease_until);
   CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;
   CREATE TABLE lines (
     batch_key TEXT NOT NULL REFERENCES batches (key) ON DELETE CASCADE,
     custom_id TEXT NOT NULL,
     identity TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     state INTEGER NOT NULL DEFAULT 0,
     result TEXT
   );
   CREATE UNIQUE INDEX lines_batch ON lines (batch_key, custom_id);
   CREATE INDEX lines_identity ON lines (identity);`,
];
const BUSY_TIMEOUT_MS = 10_000;
const PAGE_SIZE = 16_384;

/**
 * Two processes opening a new file at once can meet SQLite's deadlock guard (switching to WAL or taking the write lock
 * while the other holds a read lock), which answers "database is locked" at once instead of waiting on busy_timeout:
 * try again, with jitter, until the same timeout has passed.
 */
export async function migrateWhenFree(db: SqliteDatabase, file: string): Promise<void> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return migrate(db, file);
    } catch (err) {
      if (!isBusy((err as Error).cause) || Date.now() >= deadline) throw err;
      await sleep(realClock, 10 + Math.random() * 40);
    }
  }
}

function isBusy(err: unknown): boolean {
  const e = err as { code?: unknown; errcode?: unknown } | undefined;
  // node:sqlite reports SQLITE_BUSY as errcode 5 (extended codes keep 5 in the low byte); better-sqlite3 as a code.
  return (
    (typeof e?.errcode === "number" && (e.errcode & 0xff) === 5) ||
    (typeof e?.code === "string" && e.code.startsWith("SQLITE_BUSY"))
  );
}

function migrate(db: SqliteDatabase, file: string): void {
  let version: number;
  let appId: number;
  let tables: number;
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // One read transaction, so another process's migration is seen whole or not at all.
    db.exec("BEGIN");
    try {
      version = pragma(db, "user_version");
      appId = pragma(db, "application_id");
      tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n;
    } finally {
      db.exec("COMMIT");
    }
  } catch (err) {
    const why = isBusy(err)
      ? "is locked by another process"
      : "is not a readable SQLite database (corrupt, or another kind of file)";
    throw new StoreError(file, `${why}: ${message(err)}`, { cause: err });
  }
  if (appId !== APPLICATION_ID && (appId !== 0 || version !== 0 || tables > 0)) {
    throw new StoreError(file, "is a SQLite database but not an autobatch store; give the store a file of its own");
  }
  if (version > MIGRATIONS.length) {
    throw new StoreError(
      file,
      `was written by a newer version of autobatch (schema ${version}; this version knows up to ${MIGRATIONS.length}): upgrade autobatch`,
    );
  }
  try {
    // Set before the first write makes the file (later it takes a VACUUM, so an older store keeps its 4 kB pages): a
    // result line is ~1–2 kB, so 4 kB pages hold two or three rows and every write splits pages; 16 kB pages halve
    // the CPU spent writing results.
    if (tables === 0) db.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    if (version === MIGRATIONS.length) return;
    db.exec("BEGIN IMMEDIATE");
    try {
      // Another process may have migrated while this one waited for the write lock.
      const now = pragma(db, "user_version");
      for (let v = now; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  } catch (err) {
    throw new StoreError(file, `could not be prepared as a store: ${message(err)}`, { cause: err });
  }
}

function pragma(db: SqliteDatabase, name: string): number {
  return Number(Object.values(db.prepare(`PRAGMA ${name}`).get() as Record<string, number>)[0]);
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
