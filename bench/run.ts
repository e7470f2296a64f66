// `npm run bench [-- <scenario>...] [--quick]`: runs each scenario in its own `node --expose-gc` process (so memory
// and CPU figures are that scenario's alone; each starts its own emulator process), prints a markdown table with
// every target checked, and writes the raw results to bench/results/latest.json.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { int, mb, ms, pct, ratio, table, type Row } from "./lib/report.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SCENARIOS = [
  "throughput",
  "latency",
  "memory",
  "scaling",
  "stalls",
  "polling",
  "imports",
  "durable",
  "serve",
  "bulk",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const picked = args.filter((a) => !a.startsWith("--"));
for (const name of picked) {
  if (!(SCENARIOS as readonly string[]).includes(name)) {
    console.error(`unknown scenario '${name}'; pick from: ${SCENARIOS.join(", ")} (and --quick)`);
    process.exit(2);
  }
}
const selected: Scenario[] = picked.length ? (picked as Scenario[]) : [...SCENARIOS];
// Quick mode divides every count by 10 (and halves the latency spread) for a check in well under a minute.
const N = {
  throughput: quick ? 10_000 : 100_000,
  latency: quick ? 1_000 : 5_000,
  spreadMs: quick ? 5_000 : 10_000,
  memory: quick ? 10_000 : 100_000,
  // Each step its own process; batchSize 50,000 (the providers' most lines per batch) at every step.
  scaling: quick ? [5_000, 15_000, 50_000] : [100_000, 300_000, 1_000_000],
  scalingBatchSize: quick ? 5_000 : 50_000,
  stalls: quick ? 100_000 : 1_000_000,
  polling: quick ? [200] : [200, 1_000],
  durable: quick ? 10_000 : 50_000,
  serve: quick ? ["--requests", 5_000, "--warmup", 2_000, "--held", 1_000] : [],
  bulk: quick ? 10_000 : 100_000,
};
const POLL_MS = 250;
/** CPU figures move with whatever else the machine runs: throughput runs are repeated and the median kept. */
const RUNS = quick ? 1 : 3;

// Loose on purpose: these are the scenarios' own JSON, written by the files next to this one.
type Result = any;

function runScenario(file: string, flags: (string | number)[]): Promise<Result> {
  console.error(`▶ ${file} ${flags.join(" ")}`);
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--expose-gc", `bench/scenarios/${file}.ts`, ...flags.map(String)],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`${file} exited with code ${code}`));
      const result = JSON.parse(out.trim().split("\n").at(-1)!) as Result;
      if (result.failed) return reject(new Error(`${file}: ${result.failed} calls failed (${result.firstError})`));
      resolve(result);
    });
  });
}

/** Median run by client CPU per 1,000 calls, with every run's figure kept for the JSON file. */
async function throughput(
  calls: number,
  runs: number,
  batchSize = 10_000,
  store?: () => Promise<string>,
): Promise<Result> {
  const all: Result[] = [];
  for (let r = 0; r < runs; r++) all.push(await throughputRun(calls, batchSize, store && (await store())));
  return median(all);
}

function throughputRun(calls: number, batchSize: number, store?: string): Promise<Result> {
  const storeFlags = store ? ["--store", store] : [];
  return runScenario("throughput", ["--calls", calls, "--poll-ms", POLL_MS, "--batch-size", batchSize, ...storeFlags]);
}

function median(all: Result[]): Result {
  all.sort((a, b) => a.cpuPer1kMs - b.cpuPer1kMs);
  return { ...all[Math.floor(all.length / 2)], runsCpuPer1kMs: all.map((x) => x.cpuPer1kMs) };
}

const results: Record<string, Result> = {};
const rows: Row[] = [];

if (selected.includes("throughput")) {
  const t = (results.throughput = await throughput(N.throughput, RUNS));
  const per1k = (v: number) => ms(v / (t.calls / 1000));
  rows.push(
    {
      metric: `Client CPU per 1,000 calls (${int(t.calls)} calls, batchSize ${int(t.batchSize)})`,
      value: `${per1k(t.cpuMs)} (user ${per1k(t.cpuUserMs)}, system ${per1k(t.cpuSystemMs)}; GC pauses ${per1k(t.gcMs)}; the app building its params, ${per1k(t.makeCpuMs)}, excluded)`,
      target: "",
    },
    {
      metric: "JSON floor per 1,000 calls (stringify + parse)",
      value: `${per1k(t.floor.totalMs)} (${per1k(t.floor.stringifyMs)} + ${per1k(t.floor.parseMs)})`,
      target: "",
    },
    { metric: "Client CPU ÷ JSON floor", value: ratio(t.floorRatio), target: "≤ 1.5×", met: t.floorRatio <= 1.5 },
    {
      metric: "Wall time, first call → last settled",
      value: `${(t.wallMs / 1000).toFixed(2)} s (${int(t.callsPerSecond)} calls/s)`,
      target: "",
    },
    {
      metric: "Peak RSS of the client process",
      value: `${mb(t.peakRssBytes)} (${mb(t.rssBeforeBytes)} before the run)`,
      target: "",
    },
    {
      metric: "HTTP requests to the emulator",
      value: `${int(t.requests)} (${t.requestsPer1k.toFixed(2)} per 1,000 calls; ${t.batches} batches)`,
      target: "",
    },
    bytesRow("Bytes read ÷ result file sizes (throughput run)", t),
  );
}

if (selected.includes("latency")) {
  const l = (results.latency = await runScenario("latency", [
    "--calls",
    N.latency,
    "--spread-ms",
    N.spreadMs,
    "--poll-ms",
    POLL_MS,
  ]));
  rows.push(
    {
      metric: `Settlement latency p50 (${int(l.calls)} calls over ${l.spreadMs / 1000} s, poll ${l.pollIntervalMs} ms)`,
      value: ms(l.latencyMs.p50, 0),
      target: `≤ ${l.pollIntervalMs} ms`,
      met: l.latencyMs.p50 <= l.pollIntervalMs,
    },
    {
      metric: "Settlement latency p95 (max)",
      value: `${ms(l.latencyMs.p95, 0)} (${ms(l.latencyMs.max, 0)})`,
      target: `≤ ${2 * l.pollIntervalMs} ms`,
      met: l.latencyMs.p95 <= 2 * l.pollIntervalMs,
    },
    bytesRow(`Bytes read ÷ result file sizes (latency run, ${int(l.reads.requests)} progressive reads)`, l),
  );
}

if (selected.includes("memory")) {
  for (const state of ["buffered", "inflight"] as const) {
    const m = (results[`memory-${state}`] = await runScenario("memory", ["--calls", N.memory, "--state", state]));
    rows.push({
      metric: `RSS growth ÷ payload bytes, ${int(m.calls)} calls ${state === "buffered" ? "buffered" : "in running batches"}`,
      value: `${ratio(m.rssPerPayloadByte)} (${int(m.rssPerCallBytes)} B/call; heap ${ratio(m.heapPerPayloadByte)})`,
      target: "≤ 3×",
      met: m.rssPerPayloadByte <= 3,
    });
  }
}

if (selected.includes("scaling")) {
  type Point = {
    calls: number;
    cpuPer1kMs: number;
    floorRatio: number;
    gcMaxMs: number;
    lag: [number, number];
    idle: [number, number];
    appTurn: [number, number];
  };
  const points: Point[] = [];
  for (const calls of N.scaling) {
    // A million calls take minutes and GiBs: that step runs once; the others are medians of RUNS.
    const r = await throughput(calls, calls >= 1_000_000 ? 1 : RUNS, N.scalingBatchSize);
    points.push({
      calls,
      cpuPer1kMs: r.cpuPer1kMs,
      floorRatio: r.floorRatio,
      gcMaxMs: r.gcMaxMs,
      lag: [r.loopLagP99Ms, r.loopLagMaxMs],
      idle: [r.idleLagP99Ms, r.idleLagMaxMs],
      appTurn: [r.appTurnP99Ms, r.appTurnMaxMs],
    });
  }
  results.scaling = points;
  rows.push({
    metric: `Client CPU per 1,000 calls at ${points.map((p) => int(p.calls)).join(" / ")} calls (batchSize ${int(N.scalingBatchSize)})`,
    value: `${points.map((p) => ms(p.cpuPer1kMs)).join(" / ")} (÷ floor: ${points.map((p) => ratio(p.floorRatio, 1)).join(" / ")})`,
    target: "",
  });
  // Every step, not only the ends: a bump in the middle must not hide behind two ends that agree.
  const steps: [Point, Point][] = points.slice(1).map((p, i) => [points[i]!, p]);
  if (points.length > 2) steps.push([points[0]!, points.at(-1)!]);
  for (const [a, b] of steps) {
    const deviation = b.cpuPer1kMs / a.cpuPer1kMs - 1;
    rows.push({
      metric: `CPU per 1,000 calls, ${int(a.calls)} → ${int(b.calls)} calls`,
      value: pct(deviation),
      target: "within ±10 %",
      met: Math.abs(deviation) <= 0.1,
    });
  }
  const big = points.at(-1)!;
  rows.push(
    {
      metric: `Event-loop lag p99 while ${int(big.calls)} calls wait, flush, upload and settle (idle control process; the app's own turns issuing 1,000 calls each, p99)`,
      value: `${ms(big.lag[0])} (${ms(big.idle[0])}; ${ms(big.appTurn[0])})`,
      target: "≤ 20 ms",
      met: big.lag[0] <= 20,
    },
    {
      metric:
        "Longest event-loop stall during that run (longest GC pause; idle control's longest; the app's longest turn)",
      value: `${ms(big.lag[1], 0)} (${ms(big.gcMaxMs, 0)}; ${ms(big.idle[1], 0)}; ${ms(big.appTurn[1], 0)})`,
      target: "≤ 50 ms",
      met: big.lag[1] <= 50,
    },
  );
}

if (selected.includes("stalls")) {
  const r = (results.stalls = await runScenario("stalls", ["--calls", N.stalls]));
  rows.push({
    metric: `\`close({ cancel: true })\` with ${int(r.waiting)} calls waiting: longest stall (p99; longest GC pause; idle control's longest; close took)`,
    value: `${ms(r.loopLagMaxMs, 0)} (${ms(r.loopLagP99Ms)}; ${ms(r.gcMaxMs, 0)}; ${ms(r.idleLagMaxMs, 0)}; ${(r.closeMs / 1000).toFixed(2)} s)`,
    target: "≤ 50 ms",
    met: r.loopLagMaxMs <= 50,
  });
}

if (selected.includes("polling")) {
  const all: Result[] = [];
  for (const batches of N.polling)
    for (const flavor of ["openai", "doubleword"])
      all.push(await runScenario("polling", ["--batches", batches, "--flavor", flavor]));
  results.polling = all;
  for (const r of all) {
    rows.push({
      metric: `Status requests in one poll tick, ${int(r.batches)} running batches (${r.flavor} emulator)`,
      value: `${r.listRequests + r.byIdRequests} (${r.listRequests} list pages + ${r.byIdRequests} by id)`,
      target: `≤ ${r.budget} + fallbacks`,
      met: r.listRequests <= r.budget,
    });
  }
}

if (selected.includes("imports")) {
  const r = (results.imports = await runScenario("imports", ["--samples", quick ? 3 : 7]));
  for (const [entry, m] of Object.entries(r.entries as Record<string, { medianMs: number }>)) {
    rows.push({ metric: `Import time of \`${entry}\` (fresh process, median)`, value: ms(m.medianMs), target: "" });
  }
  rows.push({
    metric: "Process start → first flush of a fresh AutoBatcher (median)",
    value: ms(r.firstFlush.medianMs),
    target: "",
  });
}

if (selected.includes("durable")) {
  // Memory only, a SQLite file and a PostgreSQL server (started here, as the tests do), in the same run.
  const { startPostgres } = await import("../test/helpers/postgres.js");
  const dir = await mkdtemp(join(tmpdir(), "autobatch-bench-"));
  const pg = await startPostgres();
  try {
    // Interleaved, one run of each per round: the machine's load moves over minutes, and three memory runs followed
    // by three SQLite runs compared different minutes (the same code measured 1.7× and 2.2× that way).
    const runs: Record<"memory" | "sqlite" | "postgres", Result[]> = { memory: [], sqlite: [], postgres: [] };
    for (let r = 0; r < RUNS; r++) {
      runs.memory.push(await throughputRun(N.durable, 10_000));
      runs.sqlite.push(await throughputRun(N.durable, 10_000, join(dir, `bench${r}.db`)));
      runs.postgres.push(await throughputRun(N.durable, 10_000, await pg.createDatabase()));
    }
    const [memory, sqlite, postgres] = [runs.memory, runs.sqlite, runs.postgres].map(median);
    // The stores' own CPU (bench/scenarios/store-writes.ts): the same recording without the client around it.
    const writes = (spec: string) =>
      runScenario("store-writes", ["--calls", N.durable, "--runs", RUNS, "--store", spec]);
    const sqliteWrites = await writes(join(dir, "writes.db"));
    const postgresWrites = await writes(await pg.createDatabase());
    results.durable = { memory, sqlite, postgres, sqliteWrites, postgresWrites };
    const per1k = (r: Result) => ms(r.cpuPer1kMs);
    rows.push(
      {
        metric: `Client CPU per 1,000 calls, memory only / SQLite / PostgreSQL (${int(N.durable)} calls)`,
        value: `${per1k(memory)} / ${per1k(sqlite)} / ${per1k(postgres)}`,
        target: "",
      },
      {
        metric: "… SQLite store ÷ memory only",
        value: ratio(sqlite.cpuPer1kMs / memory.cpuPer1kMs),
        target: "≤ 1.3×",
        met: sqlite.cpuPer1kMs / memory.cpuPer1kMs <= 1.3,
      },
      {
        metric: "… PostgreSQL store ÷ memory only",
        value: ratio(postgres.cpuPer1kMs / memory.cpuPer1kMs),
        target: "≤ 2×",
        met: postgres.cpuPer1kMs / memory.cpuPer1kMs <= 2,
      },
      {
        metric: "… of which the store's own calls (lookups, intents, results), SQLite / PostgreSQL",
        value: `${per1k(sqliteWrites)} / ${per1k(postgresWrites)}`,
        target: "",
      },
      {
        metric: "Store size per 1,000 calls, SQLite / PostgreSQL",
        value: `${kb(sqlite.storeBytesPer1k)} / ${kb(postgres.storeBytesPer1k)}`,
        target: "",
      },
    );
  } finally {
    pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function kb(bytes: number): string {
  return `${(bytes / 1e3).toFixed(0)} kB`;
}

if (selected.includes("serve")) {
  const all: Result[] = [];
  for (let r = 0; r < RUNS; r++) all.push(await runScenario("serve", N.serve));
  all.sort((a, b) => a.cpuRatio - b.cpuRatio);
  const s = (results.serve = { ...all[Math.floor(all.length / 2)], runsCpuRatio: all.map((x) => x.cpuRatio) });
  const rps = (x: Result) =>
    `${int(x.requestsPerSecond)} req/s (p50 ${ms(x.latencyMs.p50, 0)}, ${(x.coreShare * 100).toFixed(0)} % of a core)`;
  const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} KB`;
  const runs = all.length > 1 ? `; runs: ${all.map((x) => ratio(x.cpuRatio)).join(", ")}` : "";
  rows.push(
    {
      metric: `serve / bare \`node:http\`: throughput at ${int(s.connections)} connections (window ${s.windowMs} ms, poll ${s.pollMs} ms)`,
      value: `${rps(s.serve)} / ${rps(s.bare)}`,
      target: "",
    },
    {
      metric: `Server CPU per 1,000 requests, serve / bare (${int(s.requests)} requests)`,
      value: `${ms(s.serve.cpuPer1kMs)} / ${ms(s.bare.cpuPer1kMs)}: ${ratio(s.cpuRatio)}${runs}`,
      target: "≤ 1.5×",
      met: s.cpuRatio <= 1.5,
    },
    {
      metric: `Memory per held request, serve / bare (${int(s.serve.held)} held; heap, RSS beside)`,
      value: `heap ${kb(s.serve.heapPerRequestBytes)} / ${kb(s.bare.heapPerRequestBytes)}: ${ratio(s.heapRatio)} (RSS ${kb(s.serve.rssPerRequestBytes)} / ${kb(s.bare.rssPerRequestBytes)}: ${ratio(s.rssRatio)})`,
      target: "≤ 1.3×",
      met: s.heapRatio <= 1.3,
    },
  );
}

if (selected.includes("bulk")) {
  // Interleaved rounds, one run of each: the bulk API and one promise per call, each against its own floor.
  const runs: Record<"bulk" | "promise", Result[]> = { bulk: [], promise: [] };
  for (let r = 0; r < RUNS; r++) {
    runs.bulk.push(await runScenario("bulk", ["--calls", N.bulk, "--poll-ms", POLL_MS, "--batch-size", 10_000]));
    runs.promise.push(await throughputRun(N.bulk, 10_000));
  }
  const [bulk, promise] = [runs.bulk, runs.promise].map(median);
  results.bulk = { bulk, promise };
  const floorRatios = (all: Result[]) => all.map((x) => ratio(x.floorRatio)).join(", ");
  rows.push(
    {
      metric: `Client CPU per 1,000 calls, \`bulk()\` / a promise per call (${int(N.bulk)} calls, interleaved)`,
      value: `${ms(bulk.cpuPer1kMs)} / ${ms(promise.cpuPer1kMs)} (GC pauses ${ms(bulk.gcMs / (bulk.calls / 1000))} / ${ms(promise.gcMs / (promise.calls / 1000))})`,
      target: "",
    },
    {
      metric: "`bulk()` CPU ÷ JSON floor (a promise per call, same rounds)",
      value: `${ratio(bulk.floorRatio)} (${ratio(promise.floorRatio)}; runs: ${floorRatios(runs.bulk)} / ${floorRatios(runs.promise)})`,
      target: "≤ 2×",
      met: bulk.floorRatio <= 2,
    },
  );
}

function bytesRow(metric: string, r: Result): Row {
  const agree = r.bytesServed === r.reads.bytes ? "emulator agrees" : `emulator served ${int(r.bytesServed)} B`;
  return {
    metric,
    value: `${ratio(r.readRatio, 3)} (${mb(r.reads.bytes)} of ${mb(r.resultFileBytes)}; ${agree})`,
    target: "≤ 1.05×",
    met: r.readRatio <= 1.05,
  };
}

const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`;
const date = new Date().toISOString();
console.log(`\n${table(rows)}\n\n${machine}; ${date}${quick ? "; --quick" : ""}`);
const met = rows.filter((r) => r.met !== undefined);
console.log(`targets met: ${met.filter((r) => r.met).length} of ${met.length}`);
await mkdir(new URL("results/", import.meta.url), { recursive: true });
await writeFile(
  new URL("results/latest.json", import.meta.url),
  `${JSON.stringify({ date, machine, quick, results, rows }, null, 2)}\n`,
);
