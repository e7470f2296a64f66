// The engine's parts and how they reach one another: the transport and its concurrency slots, the buffer, the
// tracker, the capacity waits, the settle sink every call settles through, the context every batch runs in and,
// with a store, the durable side. Built once per engine; what the parts need of the engine (its stop signal, its
// batches being submitted, and what it does when a call settles, a buffer flushes or a batch resumes) they reach
// through EngineHooks.
import PQueue from "p-queue";
import type { Batch, BatchContext, ResumedBatch } from "./batch.js";
import { CallBuffer, type Flushed } from "./buffer.js";
import { settle, type SettleSink } from "./call.js";
import { realClock } from "../internal/clock.js";
import { BatchFailedError } from "../errors.js";
import { CapacityWaits } from "./capacity.js";
import type { Events } from "../events.js";
import { Transport } from "../internal/transport.js";
import { windowToMs, type ResolvedOptions } from "../options-resolve.js";
import { SlottedTransport } from "./slots.js";
import { StatusPages } from "./status-pages.js";
import { Tracker } from "./tracker.js";
import { Durable } from "../store/durable.js";

/** What the parts are given of the engine that owns them. */
export interface EngineHooks {
  events: Events;
  /** Aborted when the client stops: no more retries, and running work gives up. */
  stop: AbortSignal;
  /** Batches being uploaded or created: they hold capacity as running ones do. */
  submitting: ReadonlySet<Batch>;
  /** A call settled. */
  settled(): void;
  /** Lines went back into the buffer: a closing client sends them at once. */
  flushSoon(): void;
  /** A buffer flushed: its calls make a batch to submit. */
  flushed(flushed: Flushed): void;
  /** Tracks a batch taken over from an earlier process. */
  resume(batch: ResumedBatch): void;
}

export interface EngineParts {
  transport: Transport;
  /** The cap on concurrent Batch API work (slots.ts). */
  queue: PQueue;
  buffer: CallBuffer;
  tracker: Tracker;
  capacity: CapacityWaits;
  sink: SettleSink;
  batchContext: BatchContext;
  /** Present only with a `store`. */
  durable: Durable | undefined;
}

export function wireEngine(options: ResolvedOptions, engine: EngineHooks): EngineParts {
  const clock = options.clock ?? realClock;
  const { events } = engine;
  const sink: SettleSink = {
    events,
    settled: engine.settled,
    retryable: (call) => call.retries < options.lineRetries && !engine.stop.aborted,
    retry: (call) => {
      call.retries++;
      buffer.requeue(call);
    },
    looked: engine.flushSoon,
    overCapacity: (batch, calls) => {
      const wait = capacity.hold(batch.endpoint, batch.model, calls);
      events.emit("capacityWait", {
        batchId: batch.id!,
        endpoint: batch.endpoint,
        model: batch.model,
        calls: calls.length,
        ...wait,
        message: batch.batchErrors[0] ?? "token_limit_exceeded",
      });
    },
  };
  const transport = new Transport(options, clock);
  const queue = new PQueue({ concurrency: options.maxConcurrency });
  const buffer = new CallBuffer(options, clock, engine.flushed);
  const http = new SlottedTransport(transport, queue);
  const tracker = new Tracker(
    clock,
    options.pollIntervalMs,
    engine.stop,
    (b) => {
      if (!b.refused) capacity.freed(b.endpoint, b.model);
    },
    new StatusPages(http),
  );
  const capacity = new CapacityWaits(clock, {
    running: (endpoint, model) => {
      let n = 0;
      for (const set of [tracker.batches, engine.submitting])
        for (const b of set) if (b.endpoint === endpoint && b.model === model && !b.done && !b.refused) n++;
      return n;
    },
    release: (calls) => {
      for (const c of calls) buffer.requeue(c);
      engine.flushSoon();
    },
    reject: (call, reason) => settle(call, sink, false, reason),
    expire: (call) =>
      settle(
        call,
        sink,
        false,
        new BatchFailedError(
          "token_limit_exceeded: the provider's enqueued-token limit kept refusing this call's batch until the call's deadline",
          { customId: call.customId, batchId: call.batchId, batchStatus: "failed" },
        ),
      ),
  });
  const window = windowToMs(options.completionWindow);
  const batchContext: BatchContext = {
    transport: http,
    sink,
    clock,
    settings: {
      completionWindow: options.completionWindow,
      metadata: options.metadata,
      deadlineMs: window === undefined ? undefined : window + options.deadlineGraceMs,
      lineRetries: options.lineRetries,
    },
    reads: { requests: 0, bytes: 0, lines: 0 },
  };
  let durable: Durable | undefined;
  if (options.store) {
    durable = new Durable(
      {
        store: options.store,
        retentionMs: options.storeRetentionMs,
        identity: options.requestIdentity,
        pollIntervalMs: options.pollIntervalMs,
      },
      {
        clock,
        events,
        sink,
        enqueue: (call, line) => {
          buffer.add(call, line.head, line.json);
          engine.flushSoon();
        },
        resume: engine.resume,
      },
    );
    batchContext.recorder = durable.recorder;
  }
  return { transport, queue, buffer, tracker, capacity, sink, batchContext, durable };
}
