// One caller's request, from create() to its settlement. Whoever holds the call (its buffer, then its batch)
// settles it through `settle`, which guarantees exactly once.
import type { Endpoint } from "./endpoints.js";
import type { Events } from "./events.js";

export interface Call {
  readonly customId: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  /** The encoded JSONL line; dropped once the file is uploaded so a waiting call costs little memory. */
  line: string | undefined;
  readonly bytes: number;
  readonly decodeBase64: boolean;
  /** Resolve with the unshaped `RawResult` (the batching fetch and serve re-emit the provider's bytes). */
  readonly raw: boolean;
  batchId?: string;
  settled: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** Set by the call's batch: releases the caller (abort) while the batch goes on. */
  release?: (reason: unknown) => void;
  /** Detaches the abort listener. */
  detach?: () => void;
}

/** What a `raw` call resolves with: the result line's status, body and request id, untouched. */
export interface RawResult {
  status: number;
  body: unknown;
  requestId: string | null | undefined;
  customId: string;
  batchId: string | undefined;
}

export function settle(call: Call, events: Events, ok: boolean, value: unknown): boolean {
  if (call.settled) return false;
  call.settled = true;
  call.line = undefined;
  call.detach?.();
  if (ok) call.resolve(value);
  else call.reject(value);
  if (events.wants("callSettled")) {
    const status = ok ? undefined : (value as { status?: number }).status;
    events.emit("callSettled", { customId: call.customId, batchId: call.batchId, ok, ...(status !== undefined && { status }) });
  }
  return true;
}
