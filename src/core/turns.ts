// The app's share of the event loop. Work the client does in microtasks (reading buffered result lines and settling
// their calls, rejecting many calls at once) never returns to the event loop by itself, and several result files
// read at once add up within one turn. So that work draws on one budget per turn of the event loop, shared by every
// reader and rejecter in the process: once SLICE units are spent, each waits for the next turn.
import { setImmediate as yieldToLoop } from "node:timers/promises";

/**
 * Calls settled per turn of the event loop (by their result lines, or rejected): about a ms of work, their handlers'
 * microtasks included. With 2,000, close({ cancel: true }) over 1M waiting calls stalled the loop 60–78 ms; with
 * 500, 26–59 ms, the rest being GC pauses (bench/scenarios/stalls.ts).
 */
export const SLICE = 500;

let spent = 0;
let nextTurn: Promise<void> | undefined;

/**
 * Counts `units` of work just done in this turn. Returns undefined while the turn's budget lasts (go on at once),
 * else a promise of the next turn to await before doing more.
 */
export function spend(units: number): Promise<void> | undefined {
  spent += units;
  nextTurn ??= yieldToLoop().then(() => {
    spent = 0;
    nextTurn = undefined;
  });
  return spent >= SLICE ? nextTurn : undefined;
}
