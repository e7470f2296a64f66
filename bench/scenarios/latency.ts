// Scenario 3 (settlement latency) and the progressive half of 4 (bytes read): `--calls` calls whose lines finish
// spread uniformly over `--spread-ms` (the emulator runs them all at once with random latency), polled every
// `--poll-ms`. Latency = when the caller's promise settled − when the emulator appended its line.
import { AutoBatcher } from "autobatch";
import { resultFiles, startEmulatorProcess, totalRequests } from "../lib/emulator.js";
import { emit, epochMs, flag, issue, log, percentile } from "../lib/measure.js";
import { chatParams, indexOf } from "../lib/payload.js";

const CALLS = flag("calls", 5_000);
const SPREAD_MS = flag("spread-ms", 10_000);
const POLL_MS = flag("poll-ms", 250);
const BATCH_SIZE = 1_000;

// Concurrency as high as the call count, so no line queues behind another: availability is spread by latency alone.
const emu = await startEmulatorProcess({ latencyMs: [0, SPREAD_MS], concurrency: CALLS, seed: 1 });
try {
  const client = new AutoBatcher({
    apiKey: "bench",
    baseURL: emu.baseURL,
    batchSize: BATCH_SIZE,
    batchWindowMs: 100,
    pollIntervalMs: POLL_MS,
  });
  const batches: { batchId: string; inputFileId: string }[] = [];
  client.on("batchSubmitted", (e) => batches.push({ batchId: e.batchId, inputFileId: e.inputFileId }));
  const settledAt = new Float64Array(CALLS);
  log(`latency: ${CALLS} calls finishing over ${SPREAD_MS / 1000} s, poll ${POLL_MS} ms`);
  const t0 = performance.now();
  const outcome = await issue(CALLS, chatParams, (params, i) =>
    client.chat.completions.create(params).then((r) => {
      settledAt[i] = epochMs();
      if (!r.choices[0]?.message.content?.startsWith(`echo: Request ${i}.`))
        throw new Error(`call ${i} got another call's answer`);
    }),
  );
  const wallMs = performance.now() - t0;
  await client.close();
  const stats = client.stats;
  const counters = await emu.counters();
  const files = await resultFiles(
    emu,
    batches.map((b) => b.batchId),
  );
  const bytesServed = files.ids.reduce((sum, id) => sum + (counters.bytesServed[id] ?? 0), 0);

  // custom_ids are the client's own; the input files say which call index each one carries.
  const available = await emu.get<Record<string, number | null>>("/_emulator/lines");
  const delays: number[] = [];
  for (const { inputFileId } of batches) {
    for (const text of (await emu.text(`/v1/files/${inputFileId}/content`)).split("\n")) {
      if (!text) continue;
      const line = JSON.parse(text) as { custom_id: string; body: { messages: { content: string }[] } };
      const at = available[line.custom_id];
      const i = indexOf(line.body.messages[1].content);
      if (at == null || settledAt[i] === 0) continue;
      delays.push(settledAt[i] - at);
    }
  }
  delays.sort((a, b) => a - b);
  emit({
    scenario: "latency",
    calls: CALLS,
    spreadMs: SPREAD_MS,
    pollIntervalMs: POLL_MS,
    ok: outcome.ok,
    failed: outcome.failed,
    firstError: outcome.firstError,
    measured: delays.length,
    wallMs,
    latencyMs: {
      min: delays[0],
      p50: percentile(delays, 50),
      p95: percentile(delays, 95),
      p99: percentile(delays, 99),
      max: delays.at(-1),
    },
    requests: totalRequests(counters),
    requestsByRoute: counters.requests,
    batches: batches.length,
    reads: stats.reads,
    resultFileBytes: files.bytes,
    bytesServed,
    readRatio: stats.reads.bytes / files.bytes,
  });
} finally {
  await emu.stop();
}
