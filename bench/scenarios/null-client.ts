// Reference, not a target: the throughput workload with no batching at all. Each call serialises its params and
// waits on one promise; after a wait, calls are settled in slices with their result line JSON.parse'd (lines of the
// same ~1.3 KB size as the emulator's, built before the measured window). No HTTP, buffers, files or polls: what is
// left is the work any client of this workload must do. Compare the throughput scenario's CPU per 1,000 calls.
//   node --import tsx --expose-gc bench/scenarios/null-client.ts --calls 100000
import { chatParams, userText } from "../lib/payload.js";
import { emit, flag, issue, settleHeap } from "../lib/measure.js";

const CALLS = flag("calls", 100_000);
const WAIT_MS = flag("wait-ms", 500);
const SLICE = 5_000;

const line = (i: number) =>
  JSON.stringify({
    id: `batch_req_${i}`,
    custom_id: `ab-bench-${i.toString(36)}`,
    response: {
      status_code: 200,
      request_id: null,
      body: {
        id: `chatcmpl-${i}`,
        object: "chat.completion",
        created: 1_700_000_000,
        model: "bench-model",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: `echo: ${userText(i)}`, refusal: null },
            logprobs: null,
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 230, completion_tokens: 200, total_tokens: 430 },
      },
    },
    error: null,
  });
const lines = Array.from({ length: CALLS }, (_, i) => line(i));
await settleHeap();

const waiting: ((value: unknown) => void)[] = [];
const settle = () => {
  const base = CALLS - waiting.length;
  const slice = waiting.splice(0, SLICE);
  slice.forEach((resolve, j) => resolve(JSON.parse(lines[base + j]!).response.body));
  if (waiting.length || base + slice.length < CALLS) setTimeout(settle, 5);
};
setTimeout(settle, WAIT_MS);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const outcome = await issue(CALLS, chatParams, (params) => {
  JSON.stringify(params);
  return new Promise((resolve) => waiting.push(resolve));
});
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000 - outcome.makeCpuMs;
emit({
  scenario: "null-client",
  calls: CALLS,
  ok: outcome.ok,
  cpuMs,
  cpuPer1kMs: cpuMs / (CALLS / 1000),
  wallMs: performance.now() - t0,
  lineBytes: Buffer.byteLength(lines[0]!),
});
