// Scenarios 1 (throughput), 2 (the JSON floor) and 4 (bytes read), and each point of 6 (scaling): `--calls N` chat
// calls through AutoBatcher, batchSize 10,000, against the emulator in its own process. `--store SPEC` (a fresh
// SQLite file or PostgreSQL database, made by the caller) measures the same run with durable state (scenario 10).
import { statSync } from "node:fs";
import { AutoBatcher } from "autobatch";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { resultFiles, startEmulatorProcess, totalRequests } from "../lib/emulator.js";
import { measureFloor } from "../lib/floor.js";
import { idleLag } from "../lib/idle-lag.js";
import { emit, flag, gcTimer, issue, log, peakRss, percentile, profileWindow, settleHeap } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const CALLS = flag("calls", 100_000);
const BATCH_SIZE = flag("batch-size", 10_000);
const POLL_MS = flag("poll-ms", 250);
const WARMUP_CALLS = flag("warmup", 20_000);
/** Calls the app issues per turn of its event loop (a server taking a burst of requests at once issues many). */
const CHUNK = flag("chunk", 1_000);
const storeAt = process.argv.indexOf("--store");
const STORE = storeAt > 0 ? process.argv[storeAt + 1] : undefined;

const emu = await startEmulatorProcess();
try {
  // Warm-up: the client's hot paths get compiled before the clock starts, as in any long-running process; otherwise
  // a 10k run is partly a JIT benchmark and scaling looks better than it is.
  const warm = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: 1_000,
    batchWindowMs: 50,
    pollIntervalMs: 50,
  });
  await issue(WARMUP_CALLS, chatParams, (p) => warm.chat.completions.create(p));
  await warm.close();
  await emu.get("/_emulator/counters", "DELETE");
  await settleHeap();
  const rssBefore = process.memoryUsage().rss;

  const client = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: BATCH_SIZE,
    batchWindowMs: 1_000,
    pollIntervalMs: POLL_MS,
    ...(STORE && { store: STORE }),
  });
  const batchIds: string[] = [];
  client.on("batchSubmitted", (e) => batchIds.push(e.batchId));
  // Where long stalls happen: a 10 ms timer notes each gap over 100 ms, when it ended (ms since the process started,
  // the clock of --trace-gc) and the client event that came just before.
  let lastEvent = "start";
  for (const name of ["flush", "batchSubmitted", "batchProgress", "batchDone"] as const)
    client.on(name, () => void (lastEvent = name));
  const stalls: { ms: number; at: number; after: string }[] = [];
  let lastTick = performance.now();
  const stallTimer = setInterval(() => {
    const now = performance.now();
    if (now - lastTick > 110)
      stalls.push({ ms: Math.round(now - lastTick - 10), at: Math.round(now), after: lastEvent });
    lastTick = now;
  }, 10);
  let wrong = 0;
  log(`throughput: ${CALLS} calls, batchSize ${BATCH_SIZE}, poll ${POLL_MS} ms`);
  const stopProfile = await profileWindow(`throughput-${CALLS}`);
  const stopGc = gcTimer();
  // How long the app's own work would wait for the event loop while the calls wait, flush, upload and settle.
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const stopIdle = idleLag();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // A CPU profile's timestamps are the monotonic clock in µs: this pairs it with `at` above, to find a stall in one.
  const profileClockUs = Number(process.hrtime.bigint() / 1000n) - Math.round(performance.now() * 1000);
  const outcome = await issue(
    CALLS,
    chatParams,
    (params, i) =>
      client.chat.completions.create(params).then((r) => {
        // Cheap proof the answer is this caller's own (the emulator echoes the prompt).
        if (!r.choices[0]?.message.content?.startsWith(`echo: Request ${i}.`)) wrong++;
      }),
    CHUNK,
  );
  const wallMs = performance.now() - t0;
  const appTurns = outcome.turnMs.sort((a, b) => a - b);
  const cpu = process.cpuUsage(cpu0);
  lag.disable();
  clearInterval(stallTimer);
  const idle = await stopIdle();
  // The window minus the app's own work (building the params), which the floor does not time either.
  const clientCpuMs = (cpu.user + cpu.system) / 1000 - outcome.makeCpuMs;
  const gc = stopGc();
  const peak = peakRss();
  await stopProfile();
  // After close: a read's bytes are counted when its stream ends, which can be after its last line settled a caller.
  await client.close();
  const stats = client.stats;
  const storeBytes = STORE ? await storeSize(STORE) : undefined;

  const counters = await emu.counters();
  const files = await resultFiles(emu, batchIds);
  const bytesServed = files.ids.reduce((sum, id) => sum + (counters.bytesServed[id] ?? 0), 0);
  const templateLine = (await emu.text(`/v1/files/${files.ids[0]}/content?limit=1`)).split("\n")[0];
  log(`client done in ${(wallMs / 1000).toFixed(1)} s, ${clientCpuMs.toFixed(0)} ms CPU; measuring the JSON floor`);

  await settleHeap();
  const floor = measureFloor(CALLS, templateLine);
  const requests = totalRequests(counters);
  emit({
    scenario: "throughput",
    calls: CALLS,
    batchSize: BATCH_SIZE,
    pollIntervalMs: POLL_MS,
    ok: outcome.ok - wrong,
    failed: outcome.failed + wrong,
    firstError: outcome.firstError,
    cpuMs: clientCpuMs,
    makeCpuMs: outcome.makeCpuMs,
    cpuUserMs: cpu.user / 1000 - outcome.makeCpuMs,
    cpuSystemMs: cpu.system / 1000,
    cpuPer1kMs: clientCpuMs / (CALLS / 1000),
    // The histogram is in ns and includes the sampling resolution's own wait.
    loopLagP99Ms: lag.percentile(99) / 1e6,
    loopLagMaxMs: lag.max / 1e6,
    // The app's own turns hold its loop too: lag cannot fall below them, whatever the client does.
    chunk: CHUNK,
    appTurnP99Ms: percentile(appTurns, 99),
    appTurnMaxMs: appTurns[appTurns.length - 1],
    longStalls: stalls.sort((a, b) => b.ms - a.ms).slice(0, 10),
    ...(process.env.BENCH_PROFILE && { profileClockUs }),
    idleLagP99Ms: idle.p99Ms,
    idleLagMaxMs: idle.maxMs,
    gcMs: gc.ms,
    gcCount: gc.count,
    gcMaxMs: gc.maxMs,
    wallMs,
    callsPerSecond: CALLS / (wallMs / 1000),
    rssBeforeBytes: rssBefore,
    peakRssBytes: peak,
    requests,
    requestsPer1k: requests / (CALLS / 1000),
    requestsByRoute: counters.requests,
    batches: batchIds.length,
    reads: stats.reads,
    resultFileBytes: files.bytes,
    bytesServed,
    readRatio: stats.reads.bytes / files.bytes,
    floor: { ...floor, per1kMs: floor.totalMs / (CALLS / 1000) },
    floorRatio: clientCpuMs / floor.totalMs,
    store: STORE ? (STORE.startsWith("postgres") ? "postgres" : "sqlite") : "memory",
    storeBytes,
    storeBytesPer1k: storeBytes === undefined ? undefined : storeBytes / (CALLS / 1000),
  });
} finally {
  await emu.stop();
}

/** Bytes the store holds after the run: the SQLite file with its WAL, or the PostgreSQL tables with their indexes. */
async function storeSize(spec: string): Promise<number> {
  if (!spec.startsWith("postgres")) {
    const size = (f: string) => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    return size(spec) + size(`${spec}-wal`);
  }
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: spec });
  await c.connect();
  const { rows } = await c.query<{ bytes: string }>(
    "SELECT sum(pg_total_relation_size(c.oid))::bigint AS bytes FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'autobatch_%'",
  );
  await c.end();
  return Number(rows[0]!.bytes);
}
