// Event-loop stalls while many calls wait: `--calls` calls buffered (spread over enough models that no buffer
// reaches batchSize, and a one-hour window, so nothing flushes), then `close({ cancel: true })` rejects all of them. Measures the loop delay (perf_hooks) over the close:
// the longest stall, p99, and how long the close took.
import { AutoBatcher } from "autobatch";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { idleLag } from "../lib/idle-lag.js";
import { emit, flag, gcTimer, log } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const CALLS = flag("calls", 1_000_000);
const HOUR = 3_600_000;
const BATCH_SIZE = 50_000;
const MODELS = Math.ceil(CALLS / BATCH_SIZE) + 1;

// Nothing is ever sent: the port is a placeholder.
const client = new AutoBatcher({
  apiKey: "bench",
  baseURL: "http://127.0.0.1:9/v1",
  batchSize: BATCH_SIZE,
  batchWindowMs: HOUR,
});
let rejected = 0;
const onOk = () => undefined;
const onErr = () => void rejected++;
log(`stalls: ${CALLS} calls waiting, then close({ cancel: true })`);
for (let i = 0; i < CALLS; i++) {
  client.chat.completions.create(chatParams(i, `bench-model-${i % MODELS}`)).then(onOk, onErr);
  if (i % 1_000 === 999) await yieldToLoop();
}
const waiting = client.stats.buffered;
if (waiting !== CALLS) throw new Error(`only ${waiting} of ${CALLS} calls are waiting`);
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
const stopIdle = idleLag();
const stopGc = gcTimer();
const t0 = performance.now();
await client.close({ cancel: true });
const closeMs = performance.now() - t0;
// One more turn, so a stall at the very end is sampled too.
await new Promise((r) => setTimeout(r, 20));
lag.disable();
const gc = stopGc();
const idle = await stopIdle();
emit({
  scenario: "stalls",
  calls: CALLS,
  waiting,
  rejected,
  closeMs,
  loopLagP99Ms: lag.percentile(99) / 1e6,
  loopLagMaxMs: lag.max / 1e6,
  gcMs: gc.ms,
  gcMaxMs: gc.maxMs,
  idleLagP99Ms: idle.p99Ms,
  idleLagMaxMs: idle.maxMs,
});
