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

/** A line like a request's, found before adopting: an orphan (`o:`), or a running `a:` line of a batch leased elsewhere. */
export interface LookRow {
  identity: string;
  key: string;
  lease_until: number | string;
  expired: number | boolean;
}

/** By fingerprint: the suspects (each batch once), and the fingerprints with an orphan left. */
export function looked(rows: readonly LookRow[]): { suspects: Map<string, Suspect[]>; orphaned: Set<string> } {
  const suspects = new Map<string, Suspect[]>();
  const orphaned = new Set<string>();
  for (const row of rows) {
    const fp = row.identity.slice(2);
    if (row.identity.startsWith("o:")) {
      orphaned.add(fp);
      continue;
    }
    const list = suspects.get(fp) ?? [];
    if (list.length === 0) suspects.set(fp, list);
    if (!list.some((s) => s.key === row.key))
      list.push({ key: row.key, leaseUntil: Number(row.lease_until), expired: Boolean(row.expired) });
  }
  return { suspects, orphaned };
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
