// Status requests per poll tick with `--batches` running batches, from the emulator's request counters, on the
// `--flavor` emulator. Each call is its own batch (batchSize 1) and every line takes an hour, so all of them stay
// running; the client's clock is fake, so exactly one tick runs: it is measured by itself, to its last poll.
import { createClock } from "@sinonjs/fake-timers";
import { AutoBatcher } from "autobatch";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmulatorProcess } from "../lib/emulator.js";
import { emit, flag, log } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const BATCHES = flag("batches", 200);
const at = process.argv.indexOf("--flavor");
const FLAVOR = at === -1 ? "doubleword" : process.argv[at + 1];
if (FLAVOR !== "openai" && FLAVOR !== "doubleword") throw new Error(`--flavor: openai | doubleword, got ${FLAVOR}`);
const POLL_MS = 1_000;
const HOUR = 3_600_000;

/** Waits (real time, bounded) until `check` holds. */
async function until(check: () => boolean, what: string, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const emu = await startEmulatorProcess({ flavor: FLAVOR, latencyMs: HOUR, concurrency: BATCHES });
try {
  const clock = createClock();
  const client = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: 1,
    pollIntervalMs: POLL_MS,
    clock,
  });
  let progress = 0;
  client.on("batchProgress", () => void progress++);
  log(`polling: ${BATCHES} running batches, ${FLAVOR} emulator`);
  for (let i = 0; i < BATCHES; i++) client.chat.completions.create(chatParams(i)).catch(() => undefined);
  await until(() => client.stats.runningBatches === BATCHES, "every batch running");
  await emu.get("/_emulator/counters", "DELETE");
  clock.tick(POLL_MS);
  // Every batch went from validating to in_progress since its creation: each poll of this tick tells of it once.
  await until(() => progress === BATCHES, "a status for every batch");
  const { requests } = await emu.counters();
  await client.close({ cancel: true });
  emit({
    scenario: "polling",
    flavor: FLAVOR,
    batches: BATCHES,
    listRequests: requests["GET /v1/batches"] ?? 0,
    byIdRequests: requests["GET /v1/batches/:id"] ?? 0,
    budget: Math.ceil(BATCHES / 100),
  });
} finally {
  await emu.stop();
}
