// The store's own CPU, without the client around it (the durable scenario's SQLite figure is mostly this, plus the
// garbage the stored result lines leave): `--calls N` calls recorded the way the engine records them, on `--store
// SPEC` (a SQLite file path, a fresh file per run, or a PostgreSQL URL). Per batch of `--batch-size`: lookups of
// 1,000 identities at a time (none found), the intent, a snapshot, the result lines in writes of 5,000 (~1.3 kB each,
// slices of decoded chunks as the client hands them over), the end. Median of `--runs` by total CPU.
import { randomBytes } from "node:crypto";
import { fingerprint, Occurrences } from "../../src/store/identity.js";
import { openStore } from "../../src/store/open.js";
import type { BatchSnapshot, LineIntent, Store } from "../../src/store/types.js";
import { emit, flag, log } from "../lib/measure.js";
import { chatParams, userText } from "../lib/payload.js";

const CALLS = flag("calls", 50_000);
const BATCH_SIZE = flag("batch-size", 10_000);
const RUNS = flag("runs", 5);
const storeAt = process.argv.indexOf("--store");
const SPEC = storeAt > 0 ? process.argv[storeAt + 1]! : "";
if (!SPEC) throw new Error("--store SPEC is required");
const LOOKUP = 1_000;
const RESULTS_PER_WRITE = 5_000;
const CHUNK_LINES = 48;

type Phase = "find" | "intent" | "results" | "progress";

function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/** A result line shaped and sized like the emulator's, for the call `i`. */
function resultLine(customId: string, i: number): string {
  const body = {
    id: `chatcmpl-${i}`,
    object: "chat.completion",
    created: 1_700_000_000,
    model: "bench-model",
    choices: [{ index: 0, message: { role: "assistant", content: `echo: ${userText(i)}` }, finish_reason: "stop" }],
    usage: { prompt_tokens: 230, completion_tokens: 190, total_tokens: 420 },
  };
  return JSON.stringify({
    id: `batch_req_${i}`,
    custom_id: customId,
    response: { status_code: 200, request_id: `req_${i}`, body },
    error: null,
  });
}

/** The lines as LineSplitter hands them over: slices of one decoded string per chunk. */
function sliced(lines: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += CHUNK_LINES)
    out.push(
      ...lines
        .slice(i, i + CHUNK_LINES)
        .join("\n")
        .split("\n"),
    );
  return out;
}

async function run(store: Store, tag: string): Promise<Record<Phase, number>> {
  const t: Record<Phase, number> = { find: 0, intent: 0, results: 0, progress: 0 };
  const timed = async (phase: Phase, fn: () => Promise<unknown>) => {
    const c0 = cpuMs();
    await fn();
    t[phase] += cpuMs() - c0;
  };
  const occurrences = new Occurrences();
  for (let start = 0; start < CALLS; start += BATCH_SIZE) {
    const key = randomBytes(9).toString("base64url");
    const lines: LineIntent[] = [];
    const results: string[] = [];
    for (let i = start; i < Math.min(CALLS, start + BATCH_SIZE); i++) {
      const customId = `ab-${tag}-${i.toString(36)}`;
      const fp = fingerprint("/v1/chat/completions", JSON.stringify({ ...chatParams(i), user: tag }));
      lines.push({ customId, identity: occurrences.identity(fp), fingerprint: "" });
      results.push(resultLine(customId, i));
    }
    for (let i = 0; i < lines.length; i += LOOKUP)
      await timed("find", () => store.find(lines.slice(i, i + LOOKUP).map((l) => l.identity)));
    await timed("intent", () =>
      store.recordIntent({ key, endpoint: "/v1/chat/completions", model: "m", lines }, tag, 60_000),
    );
    const snapshot = (status: string, next?: number): BatchSnapshot => ({
      fileId: `file-${key}`,
      batchId: `batch_${key}`,
      status,
      counts: { total: lines.length, completed: next ?? 0, failed: 0 },
      ...(next !== undefined && { output: { fileId: `out-${key}`, next } }),
    });
    await timed("progress", () => store.record([{ key, snapshot: snapshot("in_progress") }]));
    const handed = sliced(results);
    for (let i = 0; i < handed.length; i += RESULTS_PER_WRITE) {
      const part = handed
        .slice(i, i + RESULTS_PER_WRITE)
        .map((line, j) => ({ customId: lines[i + j]!.customId, line }));
      await timed("results", () => store.record([{ key, results: part }]));
    }
    await timed("progress", () =>
      store.record([{ key, snapshot: snapshot("completed", lines.length), terminal: true }]),
    );
  }
  return t;
}

const all: (Record<Phase, number> & { total: number })[] = [];
for (let r = 0; r < RUNS; r++) {
  const store = await openStore(kindOf(SPEC) === "postgres" ? SPEC : `${SPEC}-${r}`);
  const t = await run(store, `${process.pid}r${r}`);
  await store.close();
  all.push({ ...t, total: t.find + t.intent + t.results + t.progress });
}
all.sort((a, b) => a.total - b.total);
const median = all[Math.floor(all.length / 2)]!;
const per1k = (ms: number) => ms / (CALLS / 1000);
log(`store-writes: ${CALLS} calls on ${kindOf(SPEC)}, median of ${RUNS}: ${median.total.toFixed(0)} ms CPU`);
emit({
  scenario: "store-writes",
  calls: CALLS,
  store: kindOf(SPEC),
  runs: RUNS,
  cpuPer1kMs: per1k(median.total),
  phasesPer1kMs: Object.fromEntries(
    (["find", "intent", "results", "progress"] as const).map((p) => [p, per1k(median[p])]),
  ),
  runsCpuPer1kMs: all.map((x) => per1k(x.total)),
});

function kindOf(spec: string): string {
  return /^postgres(ql)?:\/\//i.test(spec) ? "postgres" : "sqlite";
}
