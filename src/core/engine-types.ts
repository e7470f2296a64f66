// What the engine takes per call and per close, and the counters it reports, as its surfaces (AutoBatcher, the
// batching fetch, serve) pass them on; the engine is engine.ts.
export interface CallOptions {
  /** Aborting before the flush removes the call from its buffer; after, it releases the caller (the batch goes on). */
  signal?: AbortSignal | null;
  /**
   * With a store: names the call. The same key gets the same result, across processes sharing the store; the same
   * key with another request is an InvalidParamsError. At most 512 characters. Default: none (see
   * `requestIdentity`). Without a store it has no effect.
   */
  idempotencyKey?: string;
}

export interface SubmitOptions extends Omit<CallOptions, "signal"> {
  /** An AbortSignal, or only what the engine reads of one: serve passes a lighter object per request. */
  signal?: {
    readonly aborted: boolean;
    addEventListener(type: "abort", listener: () => void, options: { once: true }): void;
    removeEventListener(type: "abort", listener: () => void): void;
  } | null;
  /** Resolve with a `RawResult` (status, untouched body, request id) instead of the shaped body. */
  raw?: boolean;
  /**
   * The JSON text `params` was parsed from (serve): the line carries it as it is when the body needs no change,
   * instead of a stringify. Not used with a store, whose fingerprints are of the stringified body.
   */
  bodyText?: string;
  /** The class of the returned promise (AutoBatcher's APIPromise); default Promise. */
  promiseClass?: PromiseConstructor;
}

export interface CloseOptions {
  /** Instead of waiting: cancel running batches upstream and reject every call still waiting. Default false. */
  cancel?: boolean;
  /**
   * With a store, instead of waiting: stop, leave running batches upstream for a later process on the same store,
   * and release every call still waiting with a ClientClosedError saying so. Default false.
   */
  detach?: boolean;
}

/** Counters that make progress visible. */
export interface EngineStats {
  /** Calls waiting in buffers. */
  buffered: number;
  /** Calls of batches refused over the provider's enqueued-token limit, waiting for capacity. */
  waitingForCapacity: number;
  /** Calls whose batch is being uploaded or created. */
  submitting: number;
  /** Batches being tracked. */
  runningBatches: number;
  /** Calls not yet settled, wherever they are. */
  pending: number;
  /** Batches created so far. */
  batchesCreated: number;
  /** Content downloads: requests made, bytes and lines read. */
  reads: { requests: number; bytes: number; lines: number };
}
