// Structured logs: one JSON object per line (`ts`, `level`, `event`, then fields), for log shippers and `jq`.
import type { EventMap, EventName, Events } from "../events.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export interface LogEntry {
  ts: string;
  level: LogLevel;
  event: string;
  [field: string]: unknown;
}
/** Receives every log entry; `false` silences the proxy. Default: JSON lines on stdout. */
export type LogSink = ((entry: LogEntry) => void) | false;

export type Logger = (level: LogLevel, event: string, fields?: Record<string, unknown>) => void;

/**
 * Lines logged in this turn of the event loop, written together at its end: stdout on a file or pipe is a
 * synchronous write per call, and serve logs a line per request. An exit (a forced one included) writes what is left.
 */
let pending = "";
let scheduled = false;
let exitHooked = false;

function writePending(): void {
  scheduled = false;
  const out = pending;
  pending = "";
  if (out) process.stdout.write(out);
}

const stdoutSink = (entry: LogEntry): void => {
  pending += `${JSON.stringify(entry)}\n`;
  if (scheduled) return;
  scheduled = true;
  setImmediate(writePending);
  if (!exitHooked) {
    exitHooked = true;
    process.once("exit", writePending);
  }
};

export function createLogger(sink: LogSink | undefined): Logger {
  const write = sink === undefined ? stdoutSink : sink;
  if (write === false) return () => undefined;
  return (level, event, fields) => {
    try {
      write({ ts: new Date().toISOString(), level, event, ...fields });
    } catch {
      // A failing log sink must not fail requests.
    }
  };
}

type LogRule<K extends EventName> = { event: string; level: LogLevel | ((payload: EventMap[K]) => LogLevel) } | null;

/** Each engine event's log line; keyed by every event name, so a new event cannot be left out unnoticed. */
const ENGINE_LOG: { [K in EventName]: LogRule<K> } = {
  flush: { event: "batch.flushed", level: "info" },
  batchSubmitted: { event: "batch.submitted", level: "info" },
  batchResumed: { event: "batch.resumed", level: "info" },
  batchProgress: { event: "batch.progress", level: "info" },
  batchDone: { event: "batch.done", level: (e) => (e.status === "completed" ? "info" : "warn") },
  batchSubmitFailed: { event: "batch.submit_failed", level: "error" },
  warning: { event: "engine.warning", level: "warn" },
  capacityWait: { event: "batch.capacity_wait", level: "warn" },
  // Per-call settlements are left to the request log; not listening also spares the core building their payloads.
  callSettled: null,
  callRetried: null,
};

/** Logs the engine's batch lifecycle events. */
export function logEngineEvents(log: Logger, events: Events): void {
  for (const name of Object.keys(ENGINE_LOG) as EventName[]) listen(log, events, name);
}

function listen<K extends EventName>(log: Logger, events: Events, name: K): void {
  const rule: LogRule<K> = ENGINE_LOG[name];
  if (!rule) return;
  const { event, level } = rule;
  events.on(name, (payload) => log(typeof level === "function" ? level(payload) : level, event, payload));
}
