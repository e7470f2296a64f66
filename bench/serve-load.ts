// serve under load, as a process with a file limit: N requests held at once against `autobatch serve` started with
// `ulimit -n LIMIT` and `--max-waiting-requests CAP` (CAP < LIMIT < N). Every request must be answered (200 once its
// batch is done) or refused with 503 + Retry-After, never reset, and /health must answer throughout.
//
//   npm run build && node --import tsx bench/serve-load.ts [--requests 10000] [--cap 4000] [--nofile 6000]
//
// Prints one JSON line of counts; no durations are asserted anywhere.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { startEmulator } from "../src/emulator/index.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "10000" },
    cap: { type: "string", default: "4000" },
    nofile: { type: "string", default: "6000" },
    "window-ms": { type: "string", default: "20000" },
  },
});
const REQUESTS = Number(values.requests);
const CAP = Number(values.cap);
const NOFILE = Number(values.nofile);
const KEY = "sk-bench-serve-load-0123456789";

const emulator = await startEmulator({ port: 0, concurrency: 256 });
const serveArgs = [
  "--import tsx src/cli/index.ts serve --port 0",
  `--max-waiting-requests ${CAP}`,
  `--batch-size 50000 --batch-window-ms ${values["window-ms"]} --poll-interval-ms 500`,
].join(" ");
const child = spawn("sh", ["-c", `ulimit -n ${NOFILE} && exec "${process.execPath}" ${serveArgs}`], {
  cwd: new URL("..", import.meta.url),
  env: { ...process.env, OPENAI_API_KEY: KEY, OPENAI_BASE_URL: emulator.baseURL },
  stdio: ["ignore", "pipe", "inherit"],
});
const origin = await new Promise<string>((resolve, reject) => {
  child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const entry = JSON.parse(line) as { event: string; url?: string };
    if (entry.event === "serve.listening") resolve(entry.url!);
  });
});

const health = { probes: 0, ok: 0, failed: 0, maxWaiting: 0 };
const healthAgent = new Agent({ connections: 1 });
let probing = true;
const prober = (async () => {
  while (probing) {
    health.probes++;
    try {
      const res = await request(`${origin}/health`, { dispatcher: healthAgent, headersTimeout: 5_000 });
      const body = (await res.body.json()) as { waitingRequests: number };
      if (res.statusCode === 200) health.ok++;
      else health.failed++;
      health.maxWaiting = Math.max(health.maxWaiting, body.waitingRequests);
    } catch {
      health.failed++;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
})();

const clients = new Agent({ connections: REQUESTS + 10, headersTimeout: 600_000, bodyTimeout: 600_000 });
const counts: Record<string, number> = {};
let retryAfter = 0;
await Promise.all(
  Array.from({ length: REQUESTS }, async (_, i) => {
    let outcome: string;
    try {
      const res = await request(`${origin}/v1/chat/completions`, {
        method: "POST",
        dispatcher: clients,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `held ${i}` }] }),
      });
      await res.body.text();
      outcome = String(res.statusCode);
      if (res.statusCode === 503 && res.headers["retry-after"]) retryAfter++;
    } catch (err) {
      outcome = (err as { code?: string }).code ?? "error";
    }
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }),
);
probing = false;
await prober;
const answered = counts["200"] ?? 0;
const refused = counts["503"] ?? 0;
console.log(
  JSON.stringify({
    requests: REQUESTS,
    cap: CAP,
    nofile: NOFILE,
    outcomes: counts,
    answeredOrRefused: answered + refused,
    refusedWithRetryAfter: retryAfter,
    health,
    ok: answered + refused === REQUESTS && health.failed === 0 && answered === CAP,
  }),
);
child.kill("SIGTERM");
await new Promise((r) => child.once("exit", r));
await Promise.all([clients.close(), healthAgent.close(), emulator.close()]);
