// Structured logs: one JSON object per line (`ts`, `level`, `event`, then fields), for log shippers and `jq`.
import type { AutoBatchEvent } from "../events.js";

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

const stdoutSink = (entry: LogEntry): void => {
  process.stdout.write(`${JSON.stringify(entry)}\n`);
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

/** Batch lifecycle events as log lines; per-call settlements are left to the request log. */
export function logEngineEvent(log: Logger, e: AutoBatchEvent): void {
  const { type, ...fields } = e;
  switch (type) {
    case "flush":
      return log("info", "batch.flushed", fields);
    case "batchSubmitted":
      return log("info", "batch.submitted", fields);
    case "batchProgress":
      return log("info", "batch.progress", fields);
    case "batchDone":
      return log(e.status === "completed" ? "info" : "warn", "batch.done", fields);
    case "batchSubmitFailed":
      return log("error", "batch.submit_failed", fields);
    case "warning":
      return log("warn", "engine.warning", fields);
    case "callSettled":
      return;
  }
}

