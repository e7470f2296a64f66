// Scenario 11 (the bulk API): the throughput workload (`--calls N` ~1 KB chat calls, batchSize 10,000, the emulator
// in its own process) sent through `client.bulk()` instead of a promise per call, with the JSON floor measured in
// the same process after it. bench/run.ts runs it interleaved with the throughput scenario (one promise per call).
//   node --import tsx --expose-gc bench/scenarios/bulk.ts --calls 100000
import { AutoBatcher, type BulkRequest } from "autobatch";
import { resultFiles, startEmulatorProcess } from "../lib/emulator.js";
import { measureFloor } from "../lib/floor.js";
import { emit, flag, gcTimer, log, peakRss, profileWindow, settleHeap } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const CALLS = flag("calls", 100_000);
const BATCH_SIZE = flag("batch-size", 10_000);
const POLL_MS = flag("poll-ms", 250);
const WARMUP_CALLS = flag("warmup", 20_000);
const CHUNK = 1_000;
type ChatRequest = Extract<BulkRequest, { endpoint?: "/v1/chat/completions" }>;

interface Run {
  ok: number;
  failed: number;
  firstError?: string;
  /** CPU ms the app spent building the requests, measured apart as in bench/lib/measure.ts `issue()`. */
  makeCpuMs: number;
}

/** The requests, built a chunk at a time as the job reads them, with the building's CPU counted apart. */
function* requests(n: number, run: Run): Generator<ChatRequest> {
  const chunk: ChatRequest[] = [];
  for (let start = 0; start < n; start += CHUNK) {
    const t = process.cpuUsage();
    for (let i = start; i < Math.min(n, start + CHUNK); i++) chunk.push({ id: String(i), params: chatParams(i) });
    const u = process.cpuUsage(t);
    run.makeCpuMs += (u.user + u.system) / 1000;
    yield* chunk;
    chunk.length = 0;
  }
}

async function drive(client: AutoBatcher, n: number): Promise<Run> {
  const run: Run = { ok: 0, failed: 0, makeCpuMs: 0 };
  for await (const r of client.bulk(requests(n, run))) {
    // Cheap proof the answer is this request's own (the emulator echoes the prompt).
    if (r.ok && r.result.choices[0]?.message.content?.startsWith(`echo: Request ${r.id}.`)) run.ok++;
    else {
      run.failed++;
      run.firstError ??= r.ok ? `wrong answer for ${r.id}` : String(r.error);
    }
  }
  return run;
}

const emu = await startEmulatorProcess();
try {
  const warm = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: 1_000,
    batchWindowMs: 50,
    pollIntervalMs: 50,
  });
  await drive(warm, WARMUP_CALLS);
  await warm.close();
  await emu.get("/_emulator/counters", "DELETE");
  await settleHeap();

  const client = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: BATCH_SIZE,
    batchWindowMs: 1_000,
    pollIntervalMs: POLL_MS,
  });
  const batchIds: string[] = [];
  client.on("batchSubmitted", (e) => batchIds.push(e.batchId));
  log(`bulk: ${CALLS} calls, batchSize ${BATCH_SIZE}, poll ${POLL_MS} ms`);
  const stopProfile = await profileWindow(`bulk-${CALLS}`);
  const stopGc = gcTimer();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const outcome = await drive(client, CALLS);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const clientCpuMs = (cpu.user + cpu.system) / 1000 - outcome.makeCpuMs;
  const gc = stopGc();
  const peak = peakRss();
  await stopProfile();
  await client.close();

  const files = await resultFiles(emu, batchIds);
  const templateLine = (await emu.text(`/v1/files/${files.ids[0]}/content?limit=1`)).split("\n")[0];
  log(`bulk done in ${(wallMs / 1000).toFixed(1)} s, ${clientCpuMs.toFixed(0)} ms CPU; measuring the JSON floor`);
  await settleHeap();
  const floor = measureFloor(CALLS, templateLine);
  emit({
    scenario: "bulk",
    calls: CALLS,
    batchSize: BATCH_SIZE,
    ok: outcome.ok,
    failed: outcome.failed,
    firstError: outcome.firstError,
    cpuMs: clientCpuMs,
    makeCpuMs: outcome.makeCpuMs,
    cpuUserMs: cpu.user / 1000 - outcome.makeCpuMs,
    cpuSystemMs: cpu.system / 1000,
    cpuPer1kMs: clientCpuMs / (CALLS / 1000),
    gcMs: gc.ms,
    gcCount: gc.count,
    gcMaxMs: gc.maxMs,
    wallMs,
    callsPerSecond: CALLS / (wallMs / 1000),
    peakRssBytes: peak,
    batches: batchIds.length,
    floor: { ...floor, per1kMs: floor.totalMs / (CALLS / 1000) },
    floorRatio: clientCpuMs / floor.totalMs,
  });
} finally {
  await emu.stop();
}
