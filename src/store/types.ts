// The contract between the engine and a durable store: what is recorded about each batch and read back on resume.
// Both stores (SQLite, PostgreSQL) implement it and pass one contract test suite. Every method is one transaction;
// the engine groups its writes (one per flush, per poll, per chunk of result lines), never one per call.

/** One line of a batch file, as recorded before the file is uploaded. */
export interface LineIntent {
  customId: string;
  /** Stable across processes: `k:<idempotency key>`, or `f:<fingerprint>:<occurrence>` without a key. */
  identity: string;
  /** Hash of the endpoint and canonical body: one key reused with another body is refused by comparing it. */
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

export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** The file, or the URL without credentials: for messages and the listening line. */
  readonly location: string;
  /** Records a flushed batch and its lines, leased to `owner` for `leaseMs`. */
  recordIntent(intent: BatchIntent, owner: string, leaseMs: number): Promise<void>;
  /** Applies the updates in one transaction. Updates of unknown batches are ignored. */
  record(updates: readonly BatchUpdate[]): Promise<void>;
  /** The newest line of each identity that has one. */
  find(identities: readonly string[]): Promise<Map<string, FoundLine>>;
  /**
   * Leases to `owner` up to `limit` unfinished batches whose lease has expired (or was released) and returns them.
   * Never hands one batch to two live owners.
   */
  claim(owner: string, leaseMs: number, limit: number): Promise<StoredBatch[]>;
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
