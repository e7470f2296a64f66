// One caller's request, from create() to its settlement. Whoever holds the call (its buffer, then its batch)
// settles it through `settle`, which guarantees exactly once. A waiting call is this plain record and its promise:
// its line lives in its buffer's chunks until upload, and params or the serialised body are never reachable from it.
import type { Endpoint } from "../internal/endpoints.js";
import type { Events } from "../events.js";

export interface Call {
  readonly customId: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  /** UTF-8 bytes of the call's JSONL line. */
  readonly bytes: number;
  /**
   * Where the line was written (chunk and offset): while buffered, so an abort can leave the file; after the flush,
   * while it may be sent again (a transient failure, the token limit), until the call settles.
   */
  chunk?: Buffer;
  offset?: number;
  readonly decodeBase64: boolean;
  /** Resolve with the unshaped `RawResult` (the batching fetch and serve re-emit the provider's bytes). */
  readonly raw: boolean;
  batchId?: string;
  /** When the call is given up on (client clock, ms): its first batch's creation plus the completion window and grace. */
  deadlineAt?: number;
  /** Times its line was sent again after a transient failure (see `lineRetries`). */
  retries: number;
  /** With a durable store: the request's identity and fingerprint (see store/identity.ts). */
  identity?: string;
  fingerprint?: string;
  settled: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The call's batch once flushed: it can release the caller (abort) while the batch goes on. */
  owner?: { release(call: Call, reason: unknown): void };
  /** Detaches the abort listener. */
  detach?: () => void;
  /** A bulk call: where it settles instead of a promise (its job, shared by all its calls), under its id there. */
  to?: Delivery;
  id?: string;
}

const unset = () => undefined;

/**
 * A new waiting call. Every field a call may get later is present from the start: one shape for all calls, so
 * setting one on 50,000 calls at a flush (owner, batchId, deadlineAt) does not grow each call's property store.
 */
export function newCall(
  fields: Pick<Call, "customId" | "endpoint" | "model" | "bytes" | "decodeBase64" | "raw">,
): Call {
  return {
    customId: fields.customId,
    endpoint: fields.endpoint,
    model: fields.model,
    bytes: fields.bytes,
    decodeBase64: fields.decodeBase64,
    raw: fields.raw,
    retries: 0,
    settled: false,
    resolve: unset,
    reject: unset,
    chunk: undefined,
    offset: undefined,
    batchId: undefined,
    deadlineAt: undefined,
    identity: undefined,
    fingerprint: undefined,
    owner: undefined,
    detach: undefined,
    to: undefined,
    id: undefined,
  };
}

/**
 * The promise a call settles through `settle`. A function of its own, not inline where the call is made, so the
 * promise's executor closes over the call alone, not over params or the body.
 */
export function track(call: Call, P: PromiseConstructor): Promise<unknown> {
  return new P((resolve, reject) => {
    call.resolve = resolve;
    call.reject = reject;
  });
}

/** A bulk job's sink: a call of the job settles into it, so it needs no promise or resolvers of its own. */
export interface Delivery {
  deliver(id: string, ok: boolean, value: unknown): void;
}

/** What a `raw` call resolves with: the result line's status, body and request id, untouched. */
export interface RawResult {
  status: number;
  body: unknown;
  requestId: string | null | undefined;
  customId: string;
  batchId: string | undefined;
}

/** What the engine needs to know of a batch refused over the enqueued-token limit. */
export interface RefusedBatch {
  readonly id: string | undefined;
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly batchErrors: readonly string[];
}

/** Where settlements are counted and announced: one per engine, so a waiting call needs no closure of its own. */
export interface SettleSink {
  readonly events: Events;
  settled(call: Call): void;
  /** Whether a call whose line failed transiently may be sent again (retries left, the client not stopping). */
  retryable(call: Call): boolean;
  /** Takes back such a call (counting the retry) and buffers its line for a later batch. */
  retry(call: Call): void;
  /** A look at a batch ended: the lines it handed back (`retry`) may go out, together (a closing client sends them). */
  looked(): void;
  /** Takes back the calls of a batch refused over the provider's enqueued-token limit, to send once capacity frees up. */
  overCapacity(batch: RefusedBatch, calls: Call[]): void;
}

const released = () => undefined;

export function settle(call: Call, sink: SettleSink, ok: boolean, value: unknown): boolean {
  if (call.settled) return false;
  call.settled = true;
  call.detach?.();
  call.chunk = undefined;
  if (call.to) call.to.deliver(call.id!, ok, value);
  else if (ok) call.resolve(value);
  else call.reject(value);
  // The resolvers reach the promise and through it the result: a settled call (still listed by its batch until the
  // batch ends) must not keep every result of its batch alive.
  call.resolve = call.reject = released;
  sink.settled(call);
  const events = sink.events;
  if (events.wants("callSettled")) {
    const status = ok ? undefined : (value as { status?: number }).status;
    events.emit("callSettled", {
      customId: call.customId,
      batchId: call.batchId,
      ok,
      ...(status !== undefined && { status }),
    });
  }
  return true;
}
