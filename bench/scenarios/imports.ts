// Import time of each public entry, in a fresh process per sample (a warm module cache would hide the cost), and
// the time to the first flush of a fresh client: what a short script or a CLI pays before its first batch.
// Prints one JSON line: { entries: { [entry]: { medianMs, samples } }, firstFlush: { medianMs, samples } }.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SAMPLES = Number(process.argv[process.argv.indexOf("--samples") + 1]) || 7;
const ENTRIES = ["autobatch", "autobatch/serve", "autobatch/emulator"];

/** Runs `code` as an ES module in a fresh node and returns the number it prints (ms). */
function sample(code: string): number {
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, encoding: "utf8" });
  if (out.status !== 0) throw new Error(`sample failed: ${out.stderr}`);
  return Number(out.stdout.trim());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function measure(code: string): { medianMs: number; samples: number[] } {
  const samples = Array.from({ length: SAMPLES }, () => sample(code));
  return { medianMs: median(samples), samples };
}

const entries: Record<string, { medianMs: number; samples: number[] }> = {};
for (const entry of ENTRIES) {
  entries[entry] = measure(
    `const t = performance.now(); await import(${JSON.stringify(entry)}); console.log(performance.now() - t);`,
  );
}
// From process start (performance.now() counts from it) to the first flush event: import + construct + one call.
const firstFlush = measure(`
  const { AutoBatcher } = await import("autobatch");
  const client = new AutoBatcher({ apiKey: "k", baseURL: "http://127.0.0.1:9/v1", batchWindowMs: 0, maxRetries: 0 });
  const flushed = new Promise((resolve) => client.on("flush", resolve));
  client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }).catch(() => {});
  await flushed;
  console.log(performance.now());
  await client.close({ cancel: true });
`);
console.log(JSON.stringify({ entries, firstFlush }));
