// The contract between the engine and a durable store: what is recorded about each batch and read back on resume.
// Both stores (SQLite, PostgreSQL) implement it and pass one contract test suite. Every method is one transaction;
// the engine groups its writes (one per flush, per poll, per chunk of result lines), never one per call.

/** One line of a batch file, as recorded before the file is uploaded. */
export interface LineIntent {
  customId: string;
  /**
   * Stable across processes: `k:<idempotency key>`, or `f:<fingerprint>:<occurrence>` without a key; a line no call
   * names is `u:<custom_id>` (see identity.ts).
   */
  identity: string;
  /**
   * Hash of the endpoint and canonical body, or "": beside a key, to refuse the key reused with another body; beside a
   * `u:` identity, the line is open to adoption (requestIdentity "adopt").
   */
  fingerprint: string;
}

/** A flushed batch, recorded before its file is uploaded. */
export interface BatchIntent {
  /** The client-made batch key (also the upload's file name and the batch's `autobatch_key` metadata). */
  key: string;
  endpoint: string;
  model: string;
  lines: LineIntent[];
}

export interface StoredCursor {
  fileId: string;
  /** Lines already read (the next `skip`). */
  next: number;
}

/** What the provider said about a batch, as last read. */
export interface BatchSnapshot {
  fileId?: string;
  batchId?: string;
  status: string;
  counts: { total: number; completed: number; failed: number };
  output?: StoredCursor;
  error?: StoredCursor;
  batchErrors?: string[];
}

/** One result line as read from the output or error file, kept verbatim so a replay settles exactly as the read did. */
export interface ResultRecord {
  customId: string;
  line: string;
}

/** A group of changes to one batch; `record()` applies a list of them in one transaction. */
export interface BatchUpdate {
  key: string;
  snapshot?: BatchSnapshot;
  results?: ResultRecord[];
  /**
   * custom_ids of lines sent again in a later batch (a transient failure, see `lineRetries`): lost here, their stored
   * result forgotten, so a rerun that finds no newer line for their identity submits them anew instead of replaying
   * a failure that was never final. Applied after `results`.
   */
  retried?: string[];
  /** The batch ended: its lines without a result become lost (a later call with their identity is submitted anew). */
  terminal?: boolean;
}

export interface StoredLine extends LineIntent {
  /** The result line, once read. */
  result?: string;
}

/** An unfinished batch taken over on resume, with every line and what is known of it. */
export interface StoredBatch {
  key: string;
  endpoint: string;
  model: string;
  /** When the intent was recorded (ms since the epoch, the store's clock). */
  createdAt: number;
  snapshot: BatchSnapshot | undefined;
  lines: StoredLine[];
}

/** The newest line recorded for an identity. */
export interface FoundLine {
  customId: string;
  batchKey: string;
  batchId: string | undefined;
  fingerprint: string;
  /** done: its result line is stored; running: its batch has not ended; lost: its batch ended without it. */
  state: "done" | "running" | "lost";
  result?: string;
}

/** An unkeyed call looking for an orphan like it (requestIdentity "adopt"). */
export interface AdoptRequest {
  fingerprint: string;
  /** The identity the adopted line takes (the call's own `u:<custom_id>`): the call then waits on it like any other. */
  identity: string;
}

/**
 * A batch not leased to the looking owner that holds a running line like the request's, still open to adoption: its
 * caller lives if the holder renews the lease, and died with it if the lease runs out (the next claim orphans it).
 */
export interface Suspect {
  key: string;
  /** When its lease ends, on the store's clock: it moves when the holder renews. */
  leaseUntil: number;
  /** The lease has run out or was released: the next claim takes the batch over. */
  expired: boolean;
}

export interface Adoptions {
  /** The orphans adopted, by the identity they took. */
  adopted: Map<string, FoundLine>;
  /** Suspects by fingerprint (only those that have any). */
  suspects: Map<string, Suspect[]>;
}

export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** The file, or the URL without credentials: for messages and the listening line. */
  readonly location: string;
  /**
   * Records a flushed batch and its lines, leased to `owner` for `leaseMs`. A named identity (`k:`, `f:`) has at most
   * one line running or answered: a line whose identity already has one (another process recorded it after this one
   * looked the call up) is not recorded, and comes back here, by custom_id, with the line found, so that the engine
   * takes it out of the file before upload and its call waits on that line instead of paying for it twice.
   */
  recordIntent(intent: BatchIntent, owner: string, leaseMs: number): Promise<Map<string, FoundLine>>;
  /** Applies the updates in one transaction. Updates of unknown batches are ignored. */
  record(updates: readonly BatchUpdate[]): Promise<void>;
  /** The newest line of each identity that has one. */
  find(identities: readonly string[]): Promise<Map<string, FoundLine>>;
  /**
   * Leases to `owner` up to `limit` unfinished batches whose lease has expired (or was released) and returns them.
   * Never hands one batch to two live owners. Taken from another owner (or released), a batch's running lines open
   * to adoption become orphans (`u:<custom_id>` → `o:<fingerprint>`): their callers died with that owner, or left.
   */
  claim(owner: string, leaseMs: number, limit: number): Promise<StoredBatch[]>;
  /**
   * Gives each request an orphan with its fingerprint (running or done, oldest first), renamed to the request's
   * identity, while any is left: each orphan goes to one request, whatever else adopts at once. Also returns the
   * suspects of each fingerprint, read with the orphans (so a claim is seen either before, or after, never missed).
   */
  adopt(requests: readonly AdoptRequest[], owner: string): Promise<Adoptions>;
  /** Extends every lease `owner` holds on an unfinished batch; returns how many. */
  renew(owner: string, leaseMs: number): Promise<number>;
  /** Gives up `owner`'s leases (all, or those of `keys`) so another process may take them at once. */
  release(owner: string, keys?: readonly string[]): Promise<void>;
  /** Deletes batches that ended more than `olderThanMs` ago, with their lines; returns how many batches. */
  purge(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** The SQLite store's clock (ms since the epoch); PostgreSQL uses the server's. Default `Date.now`. */
  now?: () => number;
  /** Told about faults that do not stop the store (e.g. a dropped idle PostgreSQL connection). */
  onWarning?: (message: string) => void;
}
