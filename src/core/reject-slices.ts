// Rejecting many calls at once (a batch that ended, close with cancel) without stalling the app: the calls are
// rejected a slice at a time, yielding to the event loop between slices, and their errors share one captured stack.
// Capturing a stack is most of an error's cost (~5 µs against ~0.8 µs without, measured on Node 20), and every
// error of one pass would show the same frames anyway.
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { Call } from "./call.js";

/**
 * Calls rejected before the event loop gets a turn: about a ms of work, their handlers' microtasks included. With
 * 2,000, close({ cancel: true }) over 1M waiting calls stalled the loop 60–78 ms; with 500, 26–59 ms, the rest
 * being GC pauses (bench/scenarios/stalls.ts).
 */
export const SLICE = 500;

/**
 * Rejects each call of `calls` not yet settled with `reason(call)` through `reject`. Calls settled meanwhile (a
 * result arrived, a caller left) are skipped, so each still settles exactly once.
 */
export async function rejectInSlices(
  calls: Iterable<Call>,
  reason: (call: Call) => unknown,
  reject: (call: Call, error: unknown) => void,
): Promise<void> {
  let frames: string | undefined;
  let n = 0;
  for (const call of calls) {
    if (call.settled) continue;
    if (frames === undefined) {
      const first = reason(call);
      const stack = first instanceof Error ? (first.stack ?? "") : "";
      const at = stack.indexOf("\n    at ");
      frames = at < 0 ? "" : stack.slice(at);
      reject(call, first);
    } else
      reject(
        call,
        withFrames(() => reason(call), frames),
      );
    if (++n % SLICE === 0) await yieldToLoop();
  }
}

/** Builds an error without capturing a stack, then gives it `frames`. */
function withFrames(build: () => unknown, frames: string): unknown {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let err: unknown;
  try {
    err = build();
  } finally {
    Error.stackTraceLimit = limit;
  }
  if (err instanceof Error) err.stack = `${err.name}: ${err.message}${frames}`;
  return err;
}
