// The embedded store: one SQLite file in WAL mode, synchronous transactions (BEGIN IMMEDIATE, so two processes on one
// file queue on busy_timeout instead of failing), the schema version in `PRAGMA user_version` and the file marked as
// ours by `PRAGMA application_id`. Several processes may share the file: leases decide who tracks each batch.
import { StoreError } from "./errors.js";
import { loadSqlite, type SqliteDatabase, type SqliteStatement } from "./sqlite-driver.js";
import { orphanIdentity } from "./identity.js";
import { foundLine, fromRows, type BatchRow, type LineRow, type LookRow, looked, snapshotJson } from "./rows.js";
import type * as T from "./types.js";
import type { BatchIntent, BatchUpdate, FoundLine, Store, StoreOptions, StoredBatch } from "./types.js";

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

export async function openSqliteStore(file: string, options: StoreOptions = {}): Promise<Store> {
  const open = await loadSqlite(file);
  let db: SqliteDatabase;
  try {
    db = open(file);
  } catch (err) {
    throw new StoreError(file, `cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  try {
    await migrateWhenFree(db, file);
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteStore(db, file, options.now ?? Date.now);
}

/**
 * Two processes opening a new file at once can meet SQLite's deadlock guard (switching to WAL or taking the write lock
 * while the other holds a read lock), which answers "database is locked" at once instead of waiting on busy_timeout:
 * try again, with jitter, until the same timeout has passed.
 */
async function migrateWhenFree(db: SqliteDatabase, file: string): Promise<void> {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return migrate(db, file);
    } catch (err) {
      if (!isBusy((err as Error).cause) || Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
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
    throw new StoreError(
      file,
      `is not a readable SQLite database (corrupt, or another kind of file): ${message(err)}`,
      {
        cause: err,
      },
    );
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

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  readonly #db: SqliteDatabase;
  readonly #now: () => number;
  readonly #sql: Statements;
  #closed = false;
  /**
   * Whether the store held anything adoptable (an orphan, or an unfinished batch leased elsewhere) for `owner`: quiet,
   * it holds until another connection commits (`data_version` moves) or this one claims, releases or records another
   * owner's batch, so a lone process asks only the pragma and skips the look; not quiet, until this one claims,
   * releases, ends a batch or adopts (the looks go on meanwhile, which is never wrong).
   */
  #gate: { owner: string; version: number; quiet: boolean } | undefined;

  constructor(db: SqliteDatabase, file: string, now: () => number) {
    this.#db = db;
    this.location = file;
    this.#now = now;
    this.#sql = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Statements;
  }

  /** Runs `fn` in one write transaction; a failure rolls back and surfaces as a StoreError naming the file. */
  #tx<T>(what: string, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError(this.location, `${what}: the store is closed`));
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const out = fn();
        this.#db.exec("COMMIT");
        return Promise.resolve(out);
      } catch (err) {
        this.#db.exec("ROLLBACK");
        throw err;
      }
    } catch (err) {
      return Promise.reject(new StoreError(this.location, `${what} failed: ${message(err)}`, { cause: err }));
    }
  }

  /** Reads need no write lock: WAL gives them a consistent snapshot while another process writes. */
  #read<T>(what: string, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError(this.location, `${what}: the store is closed`));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(new StoreError(this.location, `${what} failed: ${message(err)}`, { cause: err }));
    }
  }

  recordIntent(intent: BatchIntent, owner: string, leaseMs: number): Promise<void> {
    // A batch leased to someone else (a test writing as several owners) is one the quiet owner would look for.
    if (owner !== this.#gate?.owner) this.#gate = undefined;
    return this.#tx("recording a batch", () => {
      const now = this.#now();
      this.#sql.insertBatch.run(intent.key, intent.endpoint, intent.model, now, owner, now + leaseMs);
      for (const l of intent.lines) this.#sql.insertLine.run(intent.key, l.customId, l.identity, l.fingerprint);
    });
  }

  record(updates: readonly BatchUpdate[]): Promise<void> {
    if (updates.some((u) => u.terminal)) this.#gate = undefined;
    return this.#tx("recording progress", () => {
      for (const u of updates) {
        if (u.snapshot) this.#sql.updateSnapshot.run(snapshotJson(u.snapshot), u.key);
        for (const r of u.results ?? []) this.#sql.storeResult.run(r.line, u.key, r.customId);
        for (const id of u.retried ?? []) this.#sql.retryLine.run(u.key, id);
        if (u.terminal) {
          this.#sql.loseLines.run(u.key);
          this.#sql.endBatch.run(this.#now(), u.key);
        }
      }
    });
  }

  /** One statement for the whole list: a statement per identity cost four times as much CPU. */
  find(identities: readonly string[]): Promise<Map<string, FoundLine>> {
    return this.#read("looking up requests", () => {
      const found = new Map<string, FoundLine>();
      const rows = this.#sql.find.all(JSON.stringify(identities)) as (LineRow & { batch_id: string | null })[];
      for (const row of rows) found.set(row.identity, foundLine(row));
      return found;
    });
  }

  claim(owner: string, leaseMs: number, limit: number): Promise<StoredBatch[]> {
    return this.#tx("taking over batches", () => {
      const now = this.#now();
      const batches = this.#sql.claimable.all(now, limit) as BatchRow[];
      if (batches.length) this.#gate = undefined;
      return batches.map((b) => {
        this.#sql.orphanLines.run(b.key, b.key, owner);
        this.#sql.lease.run(owner, now + leaseMs, b.key);
        return fromRows(b, this.#sql.linesOf.all(b.key) as LineRow[]);
      });
    });
  }

  async adopt(requests: readonly T.AdoptRequest[], owner: string): Promise<T.Adoptions> {
    const rows = await this.#read("looking for orphans", () => {
      if (this.#quiet(owner)) return [];
      const now = this.#now();
      const fps = JSON.stringify([...new Set(requests.map((r) => r.fingerprint))]);
      return this.#sql.look.all(now, fps, now, owner, fps) as LookRow[];
    });
    const { suspects, orphaned } = looked(rows);
    const adopted = new Map<string, FoundLine>();
    if (orphaned.size === 0) return { adopted, suspects };
    // Looked for without the write lock; taken only when there is one to take, and looked for again under it.
    await this.#tx("adopting orphans", () => {
      for (const r of requests) {
        if (!orphaned.has(r.fingerprint)) continue;
        if (changes(this.#sql.adopt.run(r.identity, orphanIdentity(r.fingerprint))) === 0) {
          orphaned.delete(r.fingerprint);
          continue;
        }
        adopted.set(
          r.identity,
          foundLine(this.#sql.find.get(JSON.stringify([r.identity])) as LineRow & { batch_id: string | null }),
        );
      }
    });
    if (adopted.size) this.#gate = undefined;
    return { adopted, suspects };
  }

  /** Whether nothing here is adoptable: see `#gate`. */
  #quiet(owner: string): boolean {
    const gate = this.#gate?.owner === owner ? this.#gate : undefined;
    if (gate && !gate.quiet) return false;
    const version = Number(Object.values(this.#sql.dataVersion.get() as Record<string, number>)[0]);
    if (gate?.version === version) return true;
    const quiet = !(this.#sql.adoptable.get(owner) as { open: number }).open;
    this.#gate = { owner, version, quiet };
    return quiet;
  }

  renew(owner: string, leaseMs: number): Promise<number> {
    return this.#tx("renewing leases", () => changes(this.#sql.renew.run(this.#now() + leaseMs, owner)));
  }

  release(owner: string, keys?: readonly string[]): Promise<void> {
    this.#gate = undefined;
    return this.#tx("releasing leases", () => {
      if (!keys) this.#sql.releaseAll.run(owner);
      else for (const k of keys) this.#sql.releaseOne.run(owner, k);
    });
  }

  purge(olderThanMs: number): Promise<number> {
    return this.#tx("purging old batches", () => changes(this.#sql.purge.run(this.#now() - olderThanMs)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

type Statements = Record<keyof typeof SQL, SqliteStatement>;

function changes(result: unknown): number {
  return Number((result as { changes: number | bigint }).changes);
}

const SQL = {
  insertBatch:
    "INSERT INTO batches (key, endpoint, model, created_at, lease_owner, lease_until) VALUES (?, ?, ?, ?, ?, ?)",
  insertLine: "INSERT INTO lines (batch_key, custom_id, identity, fingerprint) VALUES (?, ?, ?, ?)",
  updateSnapshot: "UPDATE batches SET snapshot = ? WHERE key = ?",
  storeResult: "UPDATE lines SET state = 1, result = ? WHERE batch_key = ? AND custom_id = ? AND state = 0",
  loseLines: "UPDATE lines SET state = 2 WHERE batch_key = ? AND state = 0",
  retryLine: "UPDATE lines SET state = 2, result = NULL WHERE batch_key = ? AND custom_id = ?",
  endBatch: "UPDATE batches SET terminal = 1, finished_at = ?, lease_owner = NULL, lease_until = 0 WHERE key = ?",
  // The other columns are taken from the row of max(rowid), the newest line of each identity (SQLite's documented
  // rule for bare columns beside a single max()).
  find: `SELECT l.custom_id, l.batch_key, l.identity, l.fingerprint, l.state, l.result,
           json_extract(b.snapshot, '$.batchId') AS batch_id, max(l.rowid) AS newest
         FROM lines l JOIN batches b ON b.key = l.batch_key
         WHERE l.identity IN (SELECT value FROM json_each(?))
         GROUP BY l.identity`,
  claimable:
    "SELECT key, endpoint, model, created_at, snapshot FROM batches WHERE terminal = 0 AND lease_until <= ? ORDER BY created_at LIMIT ?",
  lease: "UPDATE batches SET lease_owner = ?, lease_until = ? WHERE key = ?",
  linesOf:
    "SELECT custom_id, batch_key, identity, fingerprint, state, result FROM lines WHERE batch_key = ? ORDER BY rowid",
  renew: "UPDATE batches SET lease_until = ? WHERE lease_owner = ? AND terminal = 0",
  releaseAll: "UPDATE batches SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ? AND terminal = 0",
  releaseOne:
    "UPDATE batches SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ? AND key = ? AND terminal = 0",
  purge: "DELETE FROM batches WHERE finished_at IS NOT NULL AND finished_at < ?",
  // Adoption (see identity.ts).
  orphanLines: `UPDATE lines SET identity = 'o:' || fingerprint
                WHERE batch_key = ? AND state = 0 AND substr(identity, 1, 2) = 'u:' AND fingerprint <> ''
                  AND EXISTS (SELECT 1 FROM batches WHERE key = ? AND lease_owner IS NOT ?)`,
  // The orphans of the fingerprints (a JSON array), by the identity index; their suspects, by reading the running
  // lines of batches leased elsewhere (none in a lone process's store): no index on fingerprints to keep up.
  look: `SELECT l.identity, b.key, b.lease_until, b.lease_until <= ? AS expired
         FROM lines l JOIN batches b ON b.key = l.batch_key
         WHERE l.identity IN (SELECT 'o:' || value FROM json_each(?)) AND l.state <> 2
         UNION ALL
         SELECT 'a:' || l.fingerprint, b.key, b.lease_until, b.lease_until <= ?
         FROM batches b JOIN lines l ON l.batch_key = b.key
         WHERE b.terminal = 0 AND b.lease_owner IS NOT ? AND l.state = 0
           AND l.fingerprint IN (SELECT value FROM json_each(?)) AND substr(l.identity, 1, 2) = 'u:'`,
  dataVersion: "PRAGMA data_version",
  adoptable: `SELECT EXISTS (SELECT 1 FROM batches WHERE terminal = 0 AND lease_owner IS NOT ?)
                OR EXISTS (SELECT 1 FROM lines WHERE identity > 'o:' AND identity < 'o;' AND state <> 2) AS open`,
  adopt: `UPDATE lines SET identity = ?, fingerprint = ''
          WHERE rowid = (SELECT rowid FROM lines WHERE identity = ? AND state <> 2 ORDER BY rowid LIMIT 1)`,
} satisfies Record<string, string>;
