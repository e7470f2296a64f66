// Event-loop stalls while many calls wait: `--calls` calls buffered (four models, a one-hour window, so nothing
// flushes), then `close({ cancel: true })` rejects all of them. Measures the loop delay (perf_hooks) over the close:
// the longest stall, p99, and how long the close took.
import { AutoBatcher } from "autobatch";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { emit, flag, log } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";

const CALLS = flag("calls", 1_000_000);
const HOUR = 3_600_000;

// Nothing is ever sent: the port is a placeholder.
const client = new AutoBatcher({
  apiKey: "bench",
  baseURL: "http://127.0.0.1:9/v1",
  batchSize: 50_000,
  batchWindowMs: HOUR,
});
let rejected = 0;
const onOk = () => undefined;
const onErr = () => void rejected++;
log(`stalls: ${CALLS} calls waiting, then close({ cancel: true })`);
for (let i = 0; i < CALLS; i++) {
  client.chat.completions.create(chatParams(i, `bench-model-${i % 4}`)).then(onOk, onErr);
  if (i % 1_000 === 999) await yieldToLoop();
}
const waiting = client.stats.buffered;
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
const t0 = performance.now();
await client.close({ cancel: true });
const closeMs = performance.now() - t0;
// One more turn, so a stall at the very end is sampled too.
await new Promise((r) => setTimeout(r, 20));
lag.disable();
emit({
  scenario: "stalls",
  calls: CALLS,
  waiting,
  rejected,
  closeMs,
  loopLagP99Ms: lag.percentile(99) / 1e6,
  loopLagMaxMs: lag.max / 1e6,
});
