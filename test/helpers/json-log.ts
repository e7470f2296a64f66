// A child process's JSON log (one object a line on stdout, as `autobatch serve` writes it), read as it arrives.
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

export interface JsonLog {
  /** Every line so far, parsed. */
  lines: Record<string, any>[];
  /** Resolves with the first log line with this event (bounded by the test timeout). */
  next(event: string): Promise<Record<string, any>>;
}

export function readJsonLog(stdout: Readable): JsonLog {
  const lines: Record<string, any>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: stdout }).on("line", (line) => {
    lines.push(JSON.parse(line));
    for (const w of waiters.splice(0)) w();
  });
  const next = (event: string) =>
    new Promise<Record<string, any>>((resolve) => {
      const check = () => {
        const found = lines.find((l) => l.event === event);
        if (found) resolve(found);
        else waiters.push(check);
      };
      check();
    });
  return { lines, next };
}
