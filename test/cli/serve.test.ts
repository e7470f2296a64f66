// `autobatch serve` as a process: flags, JSON logs on stdout, drain on SIGTERM, a second signal exits at once.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { readJsonLog } from "../helpers/json-log.js";

const KEY = "sk-cli-secret-987654321";
let emulator: Emulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0 });
});
afterAll(() => emulator.close());

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", "serve", ...args], {
    cwd: new URL("../..", import.meta.url),
    // A state directory of its own: each run starts with an empty default store.
    env: {
      ...process.env,
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: emulator.baseURL,
      XDG_STATE_HOME: mkdtempSync(join(tmpdir(), "ab-state-")),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { lines, next } = readJsonLog(child.stdout!);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child: child as ChildProcess, lines, next, exited, stderr: () => stderr };
}

const chat = (url: string, content: string) =>
  request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content }] }),
  });

describe("autobatch serve", () => {
  it("serves, logs JSON lines without the key, and drains on SIGTERM", async () => {
    const p = run(["--port", "0", "--batch-window-ms", "0.5", "--poll-interval-ms", "10"]);
    const started = await p.next("serve.listening");
    expect(started).toMatchObject({ level: "info", batchWindowMs: 0.5, pollIntervalMs: 10, auth: false });
    const res = await chat(started.url, "from the cli");
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as any).choices[0].message.content).toBe("echo: from the cli");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.lines.map((l) => l.event)).toEqual(
      expect.arrayContaining([
        "batch.submitted",
        "batch.done",
        "request",
        "serve.signal",
        "serve.closing",
        "serve.closed",
      ]),
    );
    expect(JSON.stringify(p.lines) + p.stderr()).not.toContain(KEY);
  });

  it("exits at once on a second signal while calls are still running", async () => {
    const p = run(["--port", "0", "--batch-window-ms", "1", "--poll-interval-ms", "10"]);
    const started = await p.next("serve.listening");
    const stuck = chat(started.url, "slow [[latency:60000]]").catch((e: unknown) => e);
    await p.next("batch.submitted");
    p.child.kill("SIGTERM");
    await p.next("serve.closing");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(128 + 15);
    expect(p.lines.some((l) => l.event === "serve.forced_exit")).toBe(true);
    await stuck;
  });

  it("rejects a bad flag with exit code 2 and a message naming it", async () => {
    const p = run(["--batch-size", "2.5"]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("--batch-size");
    const q = run(["--completion-window", "24 h"]);
    expect(await q.exited).toBe(2);
    expect(q.stderr()).toContain("--completion-window");
  });

  it("refuses a non-loopback --host without --auth-token, naming the flag and the way out", async () => {
    const p = run(["--host", "0.0.0.0", "--port", "0"]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("--host: 0.0.0.0 is not loopback and no authToken is set");
    expect(p.lines.some((l) => l.event === "serve.listening")).toBe(false);
  });
});
