// Rows as both stores return them, turned into the contract's objects.
import type { BatchSnapshot, FoundLine, StoredBatch, Suspect } from "./types.js";

export interface BatchRow {
  key: string;
  endpoint: string;
  model: string;
  created_at: number | string;
  snapshot: string | null;
}

export interface LineRow {
  custom_id: string;
  batch_key: string;
  identity: string;
  fingerprint: string;
  state: number;
  result: string | null;
}

const STATES = ["running", "done", "lost"] as const;

export function lineState(state: number): FoundLine["state"] {
  return STATES[state] ?? "lost";
}

/** The newest line of an identity, from a line row joined with its batch's id. */
export function foundLine(row: LineRow & { batch_id: string | null }): FoundLine {
  return {
    customId: row.custom_id,
    batchKey: row.batch_key,
    batchId: row.batch_id ?? undefined,
    fingerprint: row.fingerprint,
    state: lineState(row.state),
    ...(row.result != null && { result: row.result }),
  };
}

/** A batch suspected of holding an orphan, with the identity (`a:<fingerprint>`) of the line that made it one. */
export interface SuspectRow {
  identity: string;
  key: string;
  lease_until: number | string;
  expired: number | boolean;
}

/** Suspects by fingerprint. */
export function suspectsOf(rows: readonly SuspectRow[]): Map<string, Suspect[]> {
  const out = new Map<string, Suspect[]>();
  for (const row of rows) {
    const s = { key: row.key, leaseUntil: Number(row.lease_until), expired: Boolean(row.expired) };
    const fp = row.identity.slice(2);
    const list = out.get(fp);
    if (list) list.push(s);
    else out.set(fp, [s]);
  }
  return out;
}

export function snapshotJson(s: BatchSnapshot): string {
  return JSON.stringify(s);
}

export function fromRows(b: BatchRow, lines: LineRow[]): StoredBatch {
  return {
    key: b.key,
    endpoint: b.endpoint,
    model: b.model,
    createdAt: Number(b.created_at),
    snapshot: b.snapshot ? (JSON.parse(b.snapshot) as BatchSnapshot) : undefined,
    lines: lines.map((l) => ({
      customId: l.custom_id,
      identity: l.identity,
      fingerprint: l.fingerprint,
      ...(l.result != null && { result: l.result }),
    })),
  };
}
