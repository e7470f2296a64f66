// A control for event-loop lag figures: a process doing nothing but sampling its own loop delay, run alongside a
// measured window. On a machine shared with other work, its lag is the scheduler's share of the client's.
import { spawn } from "node:child_process";

const CHILD = `
const { monitorEventLoopDelay } = require("node:perf_hooks");
const h = monitorEventLoopDelay({ resolution: 5 });
h.enable();
setInterval(() => undefined, 1000);
process.stdin.on("end", () => {
  h.disable();
  process.stdout.write(JSON.stringify({ p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6 }));
  process.exit(0);
});
process.stdin.resume();
`;

/** Starts the control; the returned function stops it and gives its lag p99 and max (ms). */
export function idleLag(): () => Promise<{ p99Ms: number; maxMs: number }> {
  const child = spawn(process.execPath, ["-e", CHILD], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return async () => {
    child.stdin.end();
    await exited;
    return JSON.parse(out) as { p99Ms: number; maxMs: number };
  };
}
