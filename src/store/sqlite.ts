// The embedded store: one SQLite file in WAL mode, synchronous transactions (BEGIN IMMEDIATE, so two processes on one
// file queue on busy_timeout instead of failing). Several processes may share the file: leases decide who tracks each
// batch. The schema and its migration are in sqlite-schema.ts.
import { StoreError } from "./errors.js";
import { loadSqlite, type SqliteDatabase, type SqliteStatement } from "./sqlite-driver.js";
import { message, migrateWhenFree } from "./sqlite-schema.js";
import { orphanIdentity } from "./identity.js";
import { foundLine, fromRows, type BatchRow, type LineRow, type LookRow, looked, snapshotJson } from "./rows.js";
import type * as T from "./types.js";
import type { BatchIntent, BatchUpdate, FoundLine, Store, StoreOptions, StoredBatch } from "./types.js";

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
  /** `data_version` when opened, and the owners that recorded here: see `#taken`. */
  readonly #version: number;
  readonly #owners = new Set<string>();
  /** Another owner or connection writes here (sticky). */
  #shared = false;

  constructor(db: SqliteDatabase, file: string, now: () => number) {
    this.#db = db;
    this.location = file;
    this.#now = now;
    this.#sql = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Statements;
    this.#version = this.#dataVersion();
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

  recordIntent(intent: BatchIntent, owner: string, leaseMs: number): Promise<Map<string, FoundLine>> {
    // A batch leased to someone else (a test writing as several owners) is one the quiet owner would look for.
    if (owner !== this.#gate?.owner) this.#gate = undefined;
    return this.#tx("recording a batch", () => {
      const now = this.#now();
      this.#sql.insertBatch.run(intent.key, intent.endpoint, intent.model, now, owner, now + leaseMs);
      const taken = this.#taken(intent, owner);
      for (const l of intent.lines)
        if (!taken.has(l.customId)) this.#sql.insertLine.run(intent.key, l.customId, l.identity, l.fingerprint);
      return taken;
    });
  }

  /**
   * The lines of the intent whose named identity (`k:`, `f:`) already has a live line, by custom_id, read under the
   * write lock. Only another writer can have recorded one since the engine looked its calls up (one owner never records
   * an identity twice), so a connection that has seen no other owner and no other connection's commit skips the read:
   * a unique index would cost every line an index entry, and every stored result its upkeep (a third more store CPU).
   */
  #taken(intent: BatchIntent, owner: string): Map<string, FoundLine> {
    const found = new Map<string, FoundLine>();
    if (!this.#shared) {
      this.#owners.add(owner);
      this.#shared = this.#owners.size > 1 || this.#dataVersion() !== this.#version;
      if (!this.#shared) return found;
    }
    const named = new Map<string, string>();
    for (const l of intent.lines) if (/^[kf]:/.test(l.identity)) named.set(l.identity, l.customId);
    if (named.size === 0) return found;
    const rows = this.#sql.find.all(JSON.stringify([...named.keys()])) as (LineRow & { batch_id: string | null })[];
    for (const row of rows) if (row.state !== 2) found.set(named.get(row.identity)!, foundLine(row));
    return found;
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

  /** Moves whenever another connection commits to the file. */
  #dataVersion(): number {
    return Number(Object.values(this.#sql.dataVersion.get() as Record<string, number>)[0]);
  }

  /** Whether nothing here is adoptable: see `#gate`. */
  #quiet(owner: string): boolean {
    const gate = this.#gate?.owner === owner ? this.#gate : undefined;
    if (gate && !gate.quiet) return false;
    const version = this.#dataVersion();
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
