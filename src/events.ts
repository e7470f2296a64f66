// Lifecycle events: one typed emitter per client. Listeners never throw into the core.
import type { Endpoint } from "./internal/endpoints.js";

export type FlushReason = "size" | "bytes" | "time" | "close";
export interface BatchCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface EventMap {
  /** A buffer was turned into a batch file. */
  flush: { endpoint: Endpoint; model: string; calls: number; bytes: number; reason: FlushReason };
  /** The file was uploaded and the batch created upstream. */
  batchSubmitted: {
    batchId: string;
    inputFileId: string;
    endpoint: Endpoint;
    model: string;
    calls: number;
    bytes: number;
  };
  /** With a store: a batch recorded by another (perhaps dead) process was taken over, to be tracked to its end here. */
  batchResumed: { batchId?: string; endpoint: Endpoint; model: string; lines: number; unread: number };
  /** Upload or create failed after retries; every call of that file was rejected. */
  batchSubmitFailed: { endpoint: Endpoint; model: string; calls: number; message: string };
  /** A poll saw a new status or new counts. */
  batchProgress: { batchId: string; status: string; counts: BatchCounts; settled: number; calls: number };
  /**
   * The batch reached a terminal state (or was given up on) and every call of it is settled, or went into a later
   * batch (`retried`, present when not 0).
   */
  batchDone: {
    batchId: string;
    status: string;
    counts: BatchCounts;
    succeeded: number;
    failed: number;
    retried?: number;
    calls: number;
  };
  /** A call's line failed transiently (`status` when an HTTP status exists) and goes into a later batch: retry number `retry`. */
  callRetried: { customId: string; batchId: string; retry: number; status?: number; message: string };
  /** One call settled. `ok` false means it was rejected (`status` when an HTTP status exists). */
  callSettled: { customId: string; batchId?: string; ok: boolean; status?: number };
  /** Something worth logging that concerns no single call (e.g. a result line for an unknown custom_id). */
  warning: { message: string; batchId?: string };
}

export type EventName = keyof EventMap;
export type AutoBatchEvent = { [K in EventName]: { type: K } & EventMap[K] }[EventName];
type Listener<K extends EventName> = (payload: EventMap[K]) => void;

export class Events {
  #listeners = new Map<EventName, Set<Listener<any>>>();
  #sink: ((event: AutoBatchEvent) => void) | undefined;

  constructor(sink?: (event: AutoBatchEvent) => void) {
    this.#sink = sink;
  }

  on<K extends EventName>(name: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Cheap check so hot paths can skip building payloads nobody reads. */
  wants(name: EventName): boolean {
    return this.#sink !== undefined || (this.#listeners.get(name)?.size ?? 0) > 0;
  }

  emit<K extends EventName>(name: K, payload: EventMap[K]): void {
    if (this.#sink) {
      try {
        this.#sink({ type: name, ...payload } as AutoBatchEvent);
      } catch {
        // A logging callback must never break batching.
      }
    }
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        listener(payload);
      } catch {
        // Same: listeners are observers only.
      }
    }
  }
}
