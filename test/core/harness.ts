// Builds Batches outside an engine, against a fake provider, with a fake clock and a recorder that logs every change.
import { createClock } from "@sinonjs/fake-timers";
import { Batch, type BatchContext } from "../../src/core/batch.js";
import type { Call } from "../../src/core/call.js";
import type { BatchRecorder } from "../../src/core/recorder.js";
import { Events, type AutoBatchEvent } from "../../src/events.js";
import { LINE_TAIL, lineHead } from "../../src/internal/jsonl.js";
import { Transport } from "../../src/internal/transport.js";
import type { AutoBatcherOptions } from "../../src/options.js";
import { resolveOptions } from "../../src/options-resolve.js";

export const KEY = "sk-core-test-key-0123456789";
const ENDPOINT = "/v1/chat/completions" as const;

export interface Outcome {
  ok: boolean;
  value: any;
}

export function harness(
  baseURL: string,
  options: AutoBatcherOptions = {},
  deadlineMs: number | undefined = 60_000,
  lineRetries = 0,
) {
  /** Calls handed back for a later batch. */
  const retried: Call[] = [];
  /** Calls handed back to wait for capacity. */
  const refused: Call[] = [];
  const clock = createClock(1_000_000);
  const transport = new Transport(resolveOptions({ apiKey: KEY, baseURL, maxRetries: 0, ...options }), clock);
  const events: AutoBatchEvent[] = [];
  const log: string[] = [];
  const recorder: BatchRecorder = {
    submitted: (b) => log.push(`submitted ${b.id} ${b.inputFileId}`),
    submitFailed: (_b, reason) => log.push(`submitFailed ${reason.message}`),
    progress: (b) => log.push(`progress ${b.status} ${b.counts.completed}/${b.counts.failed}`),
    cursor: (_b, file, next) => log.push(`cursor ${file} ${next}`),
    retried: (_b, id) => log.push(`retried ${id}`),
    settled: (_b, id, ok) => log.push(`settled ${id} ${ok}`),
    finished: (_b, why) => log.push(`finished ${why}`),
  };
  const ctx: BatchContext = {
    transport,
    sink: {
      events: new Events((e) => events.push(e)),
      settled: () => undefined,
      retryable: (call) => call.retries < lineRetries,
      retry: (call) => {
        call.retries++;
        retried.push(call);
      },
      looked: () => undefined,
      overCapacity: (_batch, calls) => refused.push(...calls),
    },
    clock,
    settings: { completionWindow: "24h", metadata: {}, deadlineMs, lineRetries },
    reads: { requests: 0, bytes: 0, lines: 0 },
    recorder,
  };
  const outcomes = new Map<string, Outcome>();

  /** A batch of `n` chat calls with custom_ids c0…c(n-1). */
  function batch(n: number): Batch {
    const calls: Call[] = [];
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const customId = `c${i}`;
      const line = Buffer.from(`${lineHead(customId, ENDPOINT)}{"model":"m","messages":[]}${LINE_TAIL}`);
      parts.push(line);
      calls.push({
        customId,
        endpoint: ENDPOINT,
        model: "m",
        bytes: line.length,
        decodeBase64: false,
        raw: false,
        retries: 0,
        settled: false,
        resolve: (value) => outcomes.set(customId, { ok: true, value }),
        reject: (value) => outcomes.set(customId, { ok: false, value }),
      });
    }
    const bytes = parts.reduce((s, p) => s + p.length, 0);
    return new Batch({ endpoint: ENDPOINT, model: "m", calls, parts, bytes }, ctx);
  }

  return { clock, transport, events, log, ctx, outcomes, retried, refused, batch, stop: new AbortController() };
}
