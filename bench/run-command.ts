// `autobatch run` on a large file, end to end: lines per second through the emulator (in its own process), the run
// process's peak RSS, and the size of its durable store. Needs `npm run build` first.
//   node --import tsx bench/run-command.ts --lines 100000 [--batch-size 50000]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startEmulatorProcess } from "./lib/emulator.js";
import { chatParams } from "./lib/payload.js";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "100000" },
    "batch-size": { type: "string", default: "50000" },
    "retry-failed": { type: "string", default: "2" },
    /** Caps the run's V8 heap (MB): a run that completes under a small cap shows how little it keeps alive. */
    "max-heap-mb": { type: "string" },
  },
});
const lines = Number(values.lines);
const CLI = fileURLToPath(new URL("../dist/cli/index.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "autobatch-bench-run-"));
const input = join(dir, "in.jsonl");

const out = createWriteStream(input);
for (let i = 0; i < lines; i++) {
  const line = JSON.stringify({
    custom_id: `r-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: chatParams(i),
  });
  if (!out.write(`${line}\n`)) await once(out, "drain");
}
out.end();
await once(out, "finish");

const heapFlag = values["max-heap-mb"] ? [`--max-old-space-size=${values["max-heap-mb"]}`] : [];
const emulator = await startEmulatorProcess({ concurrency: 256 });
try {
  // GNU time's %M is the child's peak RSS in KiB; %e its wall time.
  const child = spawn(
    "/usr/bin/time",
    [
      "-f",
      "%e %M",
      process.execPath,
      ...heapFlag,
      CLI,
      "run",
      input,
      "--output",
      join(dir, "out.jsonl"),
      "--quiet",
      "--poll-interval-ms",
      "250",
      "--batch-size",
      values["batch-size"],
    ],
    {
      env: { ...process.env, OPENAI_API_KEY: "sk-bench", OPENAI_BASE_URL: emulator.baseURL },
      stdio: ["ignore", "inherit", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, "exit")) as [number];
  const m = /(\d+(?:\.\d+)?) (\d+)\s*$/.exec(stderr);
  if (code !== 0 || !m) throw new Error(`run exited ${code}: ${stderr}`);
  const wall = Number(m[1]);
  const outputLines = readFileSync(join(dir, "out.jsonl"), "utf8").split("\n").filter(Boolean).length;
  const counters = await emulator.counters();
  console.log(
    JSON.stringify({
      lines,
      inputBytes: statSync(input).size,
      outputLines,
      linesExecuted: counters.linesExecuted,
      batchesCreated: counters.batchesCreated,
      wallSeconds: wall,
      linesPerSecond: Math.round(lines / wall),
      peakRssMB: Math.round(Number(m[2]) / 1024),
      // The durable store (--state, beside the output): SQLite file plus its write-ahead log, if any is left.
      stateMB: Math.round(
        ["out.state.db", "out.state.db-wal"].reduce(
          (n, f) => n + (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0),
          0,
        ) / 1e6,
      ),
    }),
  );
} finally {
  await emulator.stop();
  rmSync(dir, { recursive: true, force: true });
}
