// Scenario 5 (memory per waiting call): `--calls` calls left waiting, then RSS growth ÷ the request bytes they carry.
// `--state buffered`: nothing flushes (four models so no partition reaches batchSize; a one-hour window), so every
// call still holds its encoded line. `--state inflight`: the calls are uploaded to an emulator whose lines take an
// hour, so every call waits in a running batch (its line dropped after upload).
import { AutoBatcher } from "autobatch";
import { setImmediate as yieldToLoop, setTimeout as sleep } from "node:timers/promises";
import { startEmulatorProcess, type EmulatorProcess } from "../lib/emulator.js";
import { emit, flag, log, settleHeap } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const CALLS = flag("calls", 100_000);
const at = process.argv.indexOf("--state");
const STATE = at === -1 ? "buffered" : process.argv[at + 1];
if (STATE !== "buffered" && STATE !== "inflight") throw new Error(`--state: buffered | inflight, got ${STATE}`);
const BATCH_SIZE = 10_000;
const HOUR = 3_600_000;

const emu: EmulatorProcess | undefined =
  STATE === "inflight" ? await startEmulatorProcess({ latencyMs: HOUR }) : undefined;
try {
  const client =
    STATE === "buffered"
      ? // Nothing is ever sent: the port is a placeholder.
        new AutoBatcher({ apiKey: "bench", baseURL: "http://127.0.0.1:9/v1", batchSize: 50_000, batchWindowMs: HOUR })
      : new AutoBatcher({
          apiKey: "bench",
          baseURL: emu!.baseURL,
          batchSize: BATCH_SIZE,
          batchWindowMs: 1_000,
          pollIntervalMs: 250,
        });
  const models = STATE === "buffered" ? 4 : 1;
  // Shared handlers: the bench adds only a promise reaction per call, as any awaiting caller would.
  let rejected = 0;
  const onOk = () => undefined;
  const onErr = () => void rejected++;

  // One throwaway round of the same allocations first, so the young generation has grown to its working size before
  // the baseline and RSS growth is the calls' live data, not heap the process would have reserved anyway.
  for (let i = 0; i < 20_000; i++) JSON.stringify(chatParams(i));
  await settleHeap();
  const before = process.memoryUsage();

  log(`memory: ${CALLS} calls waiting (${STATE})`);
  let payloadBytes = 0;
  for (let i = 0; i < CALLS; i++) {
    const params = chatParams(i, models > 1 ? `bench-model-${i % models}` : undefined);
    payloadBytes += Buffer.byteLength(JSON.stringify(params));
    client.chat.completions.create(params).then(onOk, onErr);
    if (i % 1_000 === 999) await yieldToLoop();
  }
  if (STATE === "inflight") {
    const expected = Math.ceil(CALLS / BATCH_SIZE);
    while (client.stats.buffered > 0 || client.stats.submitting > 0 || client.stats.runningBatches < expected)
      await sleep(100);
  }
  await settleHeap();
  const after = process.memoryUsage();
  const stats = client.stats;
  await client.close({ cancel: true });

  const rssGrowth = after.rss - before.rss;
  const heapGrowth = after.heapUsed + after.external - (before.heapUsed + before.external);
  emit({
    scenario: "memory",
    state: STATE,
    calls: CALLS,
    waiting: STATE === "buffered" ? stats.buffered : stats.pending,
    payloadBytes,
    rssGrowthBytes: rssGrowth,
    heapGrowthBytes: heapGrowth,
    rssPerPayloadByte: rssGrowth / payloadBytes,
    heapPerPayloadByte: heapGrowth / payloadBytes,
    rssPerCallBytes: rssGrowth / CALLS,
    heapPerCallBytes: heapGrowth / CALLS,
    rejectedOnClose: rejected,
  });
} finally {
  await emu?.stop();
}
