// The shared store: PostgreSQL through `pg` (an optional peer, loaded only for postgres:// URLs). Any number of
// processes on any number of machines share it: leases are taken with `FOR UPDATE SKIP LOCKED` and expire on the
// server's clock, so a dead holder's batches pass to a live process; the schema is in postgres-schema.ts. Many rows
// travel as one JSON parameter (json_to_recordset): the driver's own array encoding escapes every element in
// JavaScript, far slower than JSON.stringify.
import type { Pool, PoolClient } from "pg";
import { safeURL } from "../internal/safe-url.js";
import { StoreError } from "./errors.js";
import { orphanIdentity } from "./identity.js";
import { migrate } from "./postgres-schema.js";
import { foundLine, fromRows, type BatchRow, type LineRow, type LookRow, looked, snapshotJson } from "./rows.js";
import type * as T from "./types.js";
import type { BatchIntent, BatchUpdate, FoundLine, Store, StoreOptions, StoredBatch } from "./types.js";

/** The server's clock in ms: leases compare times taken on one clock, whatever the machines' clocks say. */
const NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
const CONNECT_TIMEOUT_MS = 10_000;
// Adoption (see identity.ts). A claim renames the running lines open to adoption of the batches it takes over.
const ORPHAN_LINES = `UPDATE autobatch_lines SET identity = 'o:' || fingerprint
  WHERE batch_key = ANY ($1::text[]) AND state = 0 AND left(identity, 2) = 'u:' AND fingerprint <> ''`;
/** Orphans (`o:`) of the identities $1, and suspects of the fingerprints $2 (running, in batches not leased to $3). */
const LOOK = `SELECT l.identity, b.key, b.lease_until, b.lease_until <= ${NOW} AS expired
  FROM autobatch_lines l JOIN autobatch_batches b ON b.key = l.batch_key
  WHERE l.identity = ANY ($1::text[]) AND l.state <> 2
  UNION ALL
  SELECT 'a:' || l.fingerprint, b.key, b.lease_until, b.lease_until <= ${NOW}
  FROM autobatch_lines l JOIN autobatch_batches b ON b.key = l.batch_key
  WHERE l.fingerprint = ANY ($2::text[]) AND left(l.identity, 2) = 'u:' AND l.fingerprint <> '' AND l.state = 0
    AND NOT b.terminal AND b.lease_owner IS DISTINCT FROM $3`;
// FOR UPDATE without SKIP LOCKED: a row locked by a writer recording its result is waited for, not passed over (and
// an orphan left unadopted); a row adopted meanwhile fails the recheck and the next one is taken.
const ADOPT = `UPDATE autobatch_lines l SET identity = $2, fingerprint = ''
  FROM (SELECT batch_key, custom_id FROM autobatch_lines WHERE identity = $1 AND state <> 2
        ORDER BY seq LIMIT 1 FOR UPDATE) o
  WHERE l.batch_key = o.batch_key AND l.custom_id = o.custom_id
  RETURNING l.custom_id, l.batch_key, l.identity, l.fingerprint, l.state, l.result,
    (SELECT b.snapshot::json ->> 'batchId' FROM autobatch_batches b WHERE b.key = l.batch_key) AS batch_id`;

export async function openPostgresStore(url: string, options: StoreOptions = {}): Promise<Store> {
  const location = safeURL(url);
  let pg: typeof import("pg");
  try {
    pg = await import("pg");
  } catch (err) {
    throw new StoreError(location, "a PostgreSQL store needs the pg package: npm install pg", { cause: err });
  }
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // An idle connection dropped by the server must not crash the process: the next query reconnects.
  pool.on("error", (err) => options.onWarning?.(`store ${location}: idle connection lost: ${err.message}`));
  const store = new PostgresStore(pool, location);
  try {
    await pool.query("SELECT 1").catch((err: Error) => {
      throw new StoreError(location, `cannot be reached: ${err.message}`, { cause: err });
    });
    await store.migrate();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return store;
}

class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly location: string;
  readonly #pool: Pool;
  #closed = false;

  constructor(pool: Pool, location: string) {
    this.#pool = pool;
    this.location = location;
  }

  migrate(): Promise<void> {
    return this.#tx("preparing the schema", (c) => migrate(c, this.location));
  }

  async #tx<T>(what: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreError(this.location, `${what}: the store is closed`);
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw new StoreError(this.location, `${what} failed: ${(err as Error).message}`, { cause: err });
    }
    // A connection lost between two queries of the transaction is reported by the next query; unheard here, it
    // would crash the process.
    const lost = () => undefined;
    client.on("error", lost);
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const out = await fn(client);
      await client.query("COMMIT");
      return out;
    } catch (err) {
      broken = err as Error;
      await client.query("ROLLBACK").catch(() => undefined);
      if (err instanceof StoreError) throw err;
      throw new StoreError(this.location, `${what} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      client.off("error", lost);
      // A client whose transaction failed may be broken: the pool replaces it rather than hand it out again.
      client.release(broken);
    }
  }

  recordIntent(intent: BatchIntent, owner: string, leaseMs: number): Promise<Map<string, FoundLine>> {
    return this.#tx("recording a batch", async (c) => {
      await c.query(
        `INSERT INTO autobatch_batches (key, endpoint, model, created_at, lease_owner, lease_until)
         VALUES ($1, $2, $3, ${NOW}, $4, ${NOW} + $5)`,
        [intent.key, intent.endpoint, intent.model, owner, leaseMs],
      );
      // A line whose identity another transaction holds live waits for it to end, then is skipped (autobatch_lines_live).
      // Inserted in identity order, so two intents sharing identities wait on each other in one order, never deadlock.
      const { rowCount } = await c.query(
        `INSERT INTO autobatch_lines (custom_id, batch_key, identity, fingerprint)
         SELECT u.c, $2, u.i, u.f FROM json_to_recordset($1::json) AS u (c text, i text, f text) ORDER BY u.i
         ON CONFLICT (identity) WHERE state <> 2 AND left(identity, 2) IN ('k:', 'f:') DO NOTHING`,
        [JSON.stringify(intent.lines.map((l) => ({ c: l.customId, i: l.identity, f: l.fingerprint }))), intent.key],
      );
      const found = new Map<string, FoundLine>();
      if (rowCount === intent.lines.length) return found;
      const rows = await c.query<LineRow & { batch_id: string | null; taken: string }>(
        `SELECT DISTINCT ON (l.identity) u.c AS taken, l.custom_id, l.batch_key, l.identity, l.fingerprint, l.state,
           l.result, b.snapshot::json ->> 'batchId' AS batch_id
         FROM json_to_recordset($1::json) AS u (c text, i text)
         JOIN autobatch_lines l ON l.identity = u.i AND l.batch_key <> $2
         JOIN autobatch_batches b ON b.key = l.batch_key
         WHERE l.state <> 2 AND NOT EXISTS (SELECT 1 FROM autobatch_lines m WHERE m.batch_key = $2 AND m.custom_id = u.c)
         ORDER BY l.identity, l.seq DESC`,
        [JSON.stringify(intent.lines.map((l) => ({ c: l.customId, i: l.identity }))), intent.key],
      );
      for (const row of rows.rows) found.set(row.taken, foundLine(row));
      return found;
    });
  }

  record(updates: readonly BatchUpdate[]): Promise<void> {
    return this.#tx("recording progress", async (c) => {
      for (const u of updates) {
        if (u.snapshot)
          await c.query("UPDATE autobatch_batches SET snapshot = $1 WHERE key = $2", [snapshotJson(u.snapshot), u.key]);
        if (u.results?.length)
          await c.query(
            `UPDATE autobatch_lines l SET state = 1, result = u.r
             FROM json_to_recordset($1::json) AS u (c text, r text)
             WHERE l.batch_key = $2 AND l.custom_id = u.c AND l.state = 0`,
            [JSON.stringify(u.results.map((r) => ({ c: r.customId, r: r.line }))), u.key],
          );
        if (u.retried?.length)
          await c.query(
            `UPDATE autobatch_lines l SET state = 2, result = NULL
             FROM json_to_recordset($1::json) AS u (c text)
             WHERE l.custom_id = u.c AND l.batch_key = $2`,
            [JSON.stringify(u.retried.map((c) => ({ c }))), u.key],
          );
        if (u.terminal) {
          await c.query("UPDATE autobatch_lines SET state = 2 WHERE batch_key = $1 AND state = 0", [u.key]);
          await c.query(
            `UPDATE autobatch_batches SET terminal = true, finished_at = ${NOW}, lease_owner = NULL, lease_until = 0
             WHERE key = $1`,
            [u.key],
          );
        }
      }
    });
  }

  async find(identities: readonly string[]): Promise<Map<string, FoundLine>> {
    const found = new Map<string, FoundLine>();
    if (identities.length === 0) return found;
    const rows = await this.#query<LineRow & { batch_id: string | null }>(
      "looking up requests",
      `SELECT DISTINCT ON (l.identity) l.custom_id, l.batch_key, l.identity, l.fingerprint, l.state, l.result,
         b.snapshot::json ->> 'batchId' AS batch_id
       FROM autobatch_lines l JOIN autobatch_batches b ON b.key = l.batch_key
       WHERE l.identity = ANY ($1::text[]) ORDER BY l.identity, l.seq DESC`,
      [identities],
    );
    for (const row of rows) found.set(row.identity, foundLine(row));
    return found;
  }

  claim(owner: string, leaseMs: number, limit: number): Promise<StoredBatch[]> {
    return this.#tx("taking over batches", async (c) => {
      const batches = (
        await c.query<BatchRow & { prior: string | null }>(
          `WITH free AS (
             SELECT key, lease_owner FROM autobatch_batches WHERE NOT terminal AND lease_until <= ${NOW}
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE autobatch_batches b SET lease_owner = $1, lease_until = ${NOW} + $3 FROM free
           WHERE b.key = free.key
           RETURNING b.key, b.endpoint, b.model, b.created_at, b.snapshot, free.lease_owner AS prior`,
          [owner, limit, leaseMs],
        )
      ).rows;
      if (batches.length === 0) return [];
      const takenOver = batches.filter((b) => b.prior !== owner).map((b) => b.key);
      if (takenOver.length) await c.query(ORPHAN_LINES, [takenOver]);
      const lines = (
        await c.query<LineRow>(
          `SELECT custom_id, batch_key, identity, fingerprint, state, result FROM autobatch_lines
           WHERE batch_key = ANY ($1::text[]) ORDER BY seq`,
          [batches.map((b) => b.key)],
        )
      ).rows;
      return batches
        .sort((a, b) => Number(a.created_at) - Number(b.created_at))
        .map((b) =>
          fromRows(
            b,
            lines.filter((l) => l.batch_key === b.key),
          ),
        );
    });
  }

  async adopt(requests: readonly T.AdoptRequest[], owner: string): Promise<T.Adoptions> {
    const fps = [...new Set(requests.map((r) => r.fingerprint))];
    const rows = await this.#query<LookRow>("looking for orphans", LOOK, [fps.map(orphanIdentity), fps, owner]);
    const { suspects, orphaned } = looked(rows);
    const adopted = new Map<string, FoundLine>();
    // One statement each, outside a transaction: an adopter holds one row lock at a time, so it never deadlocks
    // with a writer recording results.
    for (const r of requests) {
      if (!orphaned.has(r.fingerprint)) continue;
      const [row] = await this.#query<LineRow & { batch_id: string | null }>("adopting an orphan", ADOPT, [
        orphanIdentity(r.fingerprint),
        r.identity,
      ]);
      if (row) adopted.set(r.identity, foundLine(row));
      else orphaned.delete(r.fingerprint);
    }
    return { adopted, suspects };
  }

  async renew(owner: string, leaseMs: number): Promise<number> {
    const result = await this.#exec(
      "renewing leases",
      `UPDATE autobatch_batches SET lease_until = ${NOW} + $2 WHERE lease_owner = $1 AND NOT terminal`,
      [owner, leaseMs],
    );
    return result;
  }

  async release(owner: string, keys?: readonly string[]): Promise<void> {
    await this.#exec(
      "releasing leases",
      `UPDATE autobatch_batches SET lease_owner = NULL, lease_until = 0
       WHERE lease_owner = $1 AND NOT terminal AND ($2::text[] IS NULL OR key = ANY ($2::text[]))`,
      [owner, keys ?? null],
    );
  }

  purge(olderThanMs: number): Promise<number> {
    return this.#exec(
      "purging old batches",
      `DELETE FROM autobatch_batches WHERE finished_at IS NOT NULL AND finished_at < ${NOW} - $1`,
      [olderThanMs],
    );
  }

  async #query<R extends object>(what: string, sql: string, params: unknown[]): Promise<R[]> {
    if (this.#closed) throw new StoreError(this.location, `${what}: the store is closed`);
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw new StoreError(this.location, `${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async #exec(what: string, sql: string, params: unknown[]): Promise<number> {
    if (this.#closed) throw new StoreError(this.location, `${what}: the store is closed`);
    try {
      return (await this.#pool.query(sql, params)).rowCount ?? 0;
    } catch (err) {
      throw new StoreError(this.location, `${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}
