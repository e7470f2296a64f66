// `npm run demo`: the main job, end to end, with no network and no key. Starts the built-in emulator, fires many
// concurrent chat.completions.create calls at an AutoBatcher, shows live progress, and prints a summary.
import { AutoBatcher } from "autobatch";
import { startEmulator } from "autobatch/emulator";

const CALLS = Number(process.env.DEMO_CALLS ?? 5_000);
const BATCH_SIZE = Number(process.env.DEMO_BATCH_SIZE ?? 1_000);

const emu = await startEmulator({ latencyMs: [20, 1_500], concurrency: 2_000, seed: 1 });
const client = new AutoBatcher({
  apiKey: "emulator", // the emulator checks no key unless started with one
  baseURL: emu.baseURL,
  batchSize: BATCH_SIZE,
  batchWindowMs: 200,
  pollIntervalMs: 250,
});

const batches = new Map<string, { status: string; completed: number; failed: number; total: number }>();
client.on("batchSubmitted", (e) =>
  batches.set(e.batchId, { status: "submitted", completed: 0, failed: 0, total: e.calls }),
);
client.on("batchProgress", (e) => batches.set(e.batchId, { status: e.status, ...e.counts }));
client.on("batchDone", (e) => batches.set(e.batchId, { status: e.status, ...e.counts }));

let ok = 0;
let failed = 0;
const latencies: number[] = [];
const tty = process.stdout.isTTY;
const render = () => {
  const s = client.stats;
  const byStatus: Record<string, number> = {};
  for (const b of batches.values()) byStatus[b.status] = (byStatus[b.status] ?? 0) + 1;
  const statuses =
    Object.entries(byStatus)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ") || "none yet";
  const bar = "#".repeat(Math.round(((ok + failed) / CALLS) * 30)).padEnd(30, ".");
  const line = `[${bar}] ${ok + failed}/${CALLS} settled · buffered ${s.buffered} · submitting ${s.submitting} · batches: ${statuses}`;
  if (tty) process.stdout.write(`\r${line.padEnd(process.stdout.columns ? process.stdout.columns - 1 : 120)}`);
  else console.log(line);
};
const ticker = setInterval(render, tty ? 100 : 1_000);

console.log(`autobatch demo: ${CALLS} concurrent chat.completions.create calls → emulator at ${emu.baseURL}`);
const started = performance.now();
const cpuStart = process.cpuUsage();
await Promise.all(
  Array.from({ length: CALLS }, async (_, i) => {
    const t0 = performance.now();
    try {
      const res = await client.chat.completions.create({
        model: i % 2 ? "demo-small" : "demo-large",
        messages: [{ role: "user", content: `Say something about the number ${i}.` }],
      });
      if (res.choices[0]?.message.content !== `echo: Say something about the number ${i}.`)
        throw new Error("mismatched result");
      ok++;
    } catch {
      failed++;
    } finally {
      latencies.push(performance.now() - t0);
    }
  }),
);
const wall = performance.now() - started;
const cpu = process.cpuUsage(cpuStart);
clearInterval(ticker);
render();
if (tty) process.stdout.write("\n");
await client.close();

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
const requests = Object.values(emu.counters.requests).reduce((a, b) => a + b, 0);
const rows: [string, string][] = [
  ["calls", `${CALLS} (${ok} ok, ${failed} failed)`],
  [
    "batches",
    `${batches.size} (${[...batches.values()].map((b) => b.status).filter((s) => s === "completed").length} completed), batchSize ${BATCH_SIZE}, 2 models`,
  ],
  ["HTTP requests to the Batch API", `${requests} (${(requests / CALLS).toFixed(3)} per call)`],
  ["result bytes read", `${client.stats.reads.bytes.toLocaleString("en")} in ${client.stats.reads.requests} reads`],
  ["wall time, first call → last settled", `${(wall / 1000).toFixed(2)} s`],
  [
    "call latency p50 / p95 / max",
    `${(pct(50) / 1000).toFixed(2)} / ${(pct(95) / 1000).toFixed(2)} / ${(latencies.at(-1)! / 1000).toFixed(2)} s`,
  ],
  [
    "process CPU per 1,000 calls (client and emulator)",
    `${((cpu.user + cpu.system) / 1000 / (CALLS / 1000)).toFixed(1)} ms`,
  ],
];
const w = Math.max(...rows.map(([k]) => k.length));
console.log("\nsummary");
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
await emu.close();
if (failed) process.exitCode = 1;
