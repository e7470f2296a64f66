// Small measuring helpers shared by the scenarios.
import { setImmediate as yieldToLoop } from "node:timers/promises";

/** Same clock as the emulator's line availability times: comparable across processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Full collections, with event-loop turns between so weak callbacks run: RSS then reflects live data. Needs --expose-gc. */
export async function settleHeap(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  for (let i = 0; i < 4; i++) {
    gc();
    await yieldToLoop();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Peak RSS of this process so far, in bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export interface Outcome {
  ok: number;
  failed: number;
  firstError?: string;
  /** CPU ms spent building the calls' arguments (the app's work, not the client's), to subtract from a window. */
  makeCpuMs: number;
  /** Wall ms of each of the app's own turns (building a chunk's arguments and issuing its calls), in issue order. */
  turnMs: number[];
}

/**
 * Issues `n` calls, a chunk per macrotask (as a server receiving requests would), and resolves once every one has
 * settled. Each chunk's arguments are built by `make` first, with that CPU counted apart: the JSON floor builds its
 * inputs untimed, so the client's figure must not include the app building its requests either. Counts outcomes
 * instead of keeping `n` promises, so the bench holds no per-call state of its own.
 */
export async function issue<A>(
  n: number,
  make: (i: number) => A,
  call: (arg: A, i: number) => Promise<unknown>,
  chunk = 1_000,
): Promise<Outcome> {
  const out: Outcome = { ok: 0, failed: 0, makeCpuMs: 0, turnMs: [] };
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const onOk = () => {
    out.ok++;
    if (out.ok + out.failed === n) done();
  };
  const onErr = (err: unknown) => {
    out.failed++;
    out.firstError ??= String(err);
    if (out.ok + out.failed === n) done();
  };
  const args: A[] = [];
  for (let start = 0; start < n; start += chunk) {
    const end = Math.min(n, start + chunk);
    const turn0 = performance.now();
    const t = process.cpuUsage();
    for (let i = start; i < end; i++) args.push(make(i));
    const u = process.cpuUsage(t);
    out.makeCpuMs += (u.user + u.system) / 1000;
    for (let i = start; i < end; i++) call(args[i - start]!, i).then(onOk, onErr);
    args.length = 0;
    out.turnMs.push(performance.now() - turn0);
    await yieldToLoop();
  }
  if (n === 0) done();
  await all;
  return out;
}

/** Prints the scenario's result for bench/run.ts (stdout carries only this; progress goes to stderr). */
export function emit(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function log(message: string): void {
  process.stderr.write(`  · ${message}\n`);
}

/** `--name value` flags of a scenario process. */
export function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

/**
 * With BENCH_PROFILE=<dir>, records a V8 CPU profile of the measured window only (open it in Chrome DevTools or
 * speedscope) — how to find which client function a regression lives in.
 */
export async function profileWindow(name: string): Promise<() => Promise<void>> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return async () => undefined;
  const { Session } = await import("node:inspector/promises");
  const { mkdir, writeFile } = await import("node:fs/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}/${name}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  };
}

/** Main-thread GC pause time while it runs (V8's `gc` performance entries): how much of the CPU is the heap's. */
export function gcTimer(): () => { ms: number; count: number; maxMs: number } {
  let ms = 0;
  let count = 0;
  let maxMs = 0;
  const add = (e: PerformanceEntry) => {
    ms += e.duration;
    maxMs = Math.max(maxMs, e.duration);
    count++;
  };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) add(e);
  });
  obs.observe({ entryTypes: ["gc"] });
  return () => {
    // Entries are delivered asynchronously; take what has arrived, then stop.
    for (const e of obs.takeRecords()) add(e);
    obs.disconnect();
    return { ms, count, maxMs };
  };
}
