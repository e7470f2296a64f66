// The shared store's schema: numbered migrations, applied under an advisory lock so processes starting together
// migrate once, the version kept in a table of its own.
import type { PoolClient } from "pg";
import { StoreError } from "./errors.js";

const MIGRATIONS = [
  `CREATE TABLE autobatch_batches (
     key text PRIMARY KEY,
     endpoint text NOT NULL,
     model text NOT NULL,
     created_at bigint NOT NULL,
     snapshot text,
     terminal boolean NOT NULL DEFAULT false,
     finished_at bigint,
     lease_owner text,
     lease_until bigint NOT NULL DEFAULT 0
   );
   CREATE INDEX autobatch_batches_open ON autobatch_batches (lease_until) WHERE NOT terminal;
   CREATE INDEX autobatch_batches_finished ON autobatch_batches (finished_at) WHERE finished_at IS NOT NULL;
   CREATE TABLE autobatch_lines (
     seq bigserial,
     batch_key text NOT NULL REFERENCES autobatch_batches (key) ON DELETE CASCADE,
     custom_id text NOT NULL,
     identity text NOT NULL,
     fingerprint text NOT NULL,
     state smallint NOT NULL DEFAULT 0,
     result text,
     PRIMARY KEY (batch_key, custom_id)
   );
   CREATE INDEX autobatch_lines_identity ON autobatch_lines (identity, seq DESC);`,
  // Adoption: the running unkeyed lines of other processes, found by fingerprint (a fleet has many of them).
  `CREATE INDEX autobatch_lines_adoptable ON autobatch_lines (fingerprint)
     WHERE left(identity, 2) = 'u:' AND fingerprint <> '';`,
  // One live line per named identity, claimed by the intent's insert (see Store.recordIntent). Duplicates made before
  // (two processes that looked one identity up at once) keep their results but lose their name: the newest keeps it,
  // as find() already answered.
  `UPDATE autobatch_lines SET identity = 'u:' || custom_id, fingerprint = ''
     WHERE state <> 2 AND left(identity, 2) IN ('k:', 'f:') AND seq NOT IN (
       SELECT max(seq) FROM autobatch_lines WHERE state <> 2 AND left(identity, 2) IN ('k:', 'f:') GROUP BY identity);
   CREATE UNIQUE INDEX autobatch_lines_live ON autobatch_lines (identity)
     WHERE state <> 2 AND left(identity, 2) IN ('k:', 'f:');`,
];
/** Any constant: the key of the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 0x41425354;

export async function migrate(c: PoolClient, location: string): Promise<void> {
  await c.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
  await c.query("CREATE TABLE IF NOT EXISTS autobatch_schema (version integer NOT NULL)");
  const rows = (await c.query<{ version: number }>("SELECT version FROM autobatch_schema")).rows;
  const version = rows[0]?.version ?? 0;
  if (version > MIGRATIONS.length) {
    throw new StoreError(
      location,
      `was written by a newer version of autobatch (schema ${version}; this version knows up to ${MIGRATIONS.length}): upgrade autobatch`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v]!);
  if (rows.length === 0) await c.query("INSERT INTO autobatch_schema (version) VALUES ($1)", [MIGRATIONS.length]);
  else await c.query("UPDATE autobatch_schema SET version = $1", [MIGRATIONS.length]);
}
