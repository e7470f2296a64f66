// `autobatch serve` on a store, as a real process: SIGKILLed mid-run and restarted on the same store, clients
// retrying with the same Idempotency-Key are answered and each line is billed once; SIGTERM past the shutdown grace
// detaches instead of cancelling, so the next start finishes the batch.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { readJsonLog } from "../helpers/json-log.js";

const dir = mkdtempSync(join(tmpdir(), "autobatch-serve-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let emu: Emulator | undefined;
afterEach(async () => {
  await emu?.close();
  emu = undefined;
});

function serveProcess(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", "serve", ...args], {
    cwd: new URL("../..", import.meta.url),
    env: { ...process.env, OPENAI_API_KEY: "sk-serve-crash-0123456789", OPENAI_BASE_URL: emu!.baseURL },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { lines, next } = readJsonLog(child.stdout!);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, lines, next, exited };
}

const CALLS = 10;
const content = (i: number) => `serve ${i} [[latency:1500]]`;
async function keyed(url: string, i: number) {
  const res = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `key-${i}` },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: content(i) }] }),
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}
const all = (url: string) => Promise.all(Array.from({ length: CALLS }, (_, i) => keyed(url, i)));
const flags = (store: string) => [
  "--store",
  store,
  "--port",
  "0",
  "--batch-window-ms",
  "20",
  "--poll-interval-ms",
  "50",
];

describe("autobatch serve on a store", () => {
  it("SIGKILLed mid-run and restarted: keyed retries are answered and each line billed once", async () => {
    emu = await startEmulator();
    const store = join(dir, "kill.db");
    const first = serveProcess(flags(store));
    const listening = await first.next("serve.listening");
    expect(listening.store).toBe(store);
    const lost = all(listening.url).catch((e: unknown) => e);
    await first.next("batch.submitted");
    first.child.kill("SIGKILL");
    await first.exited;
    await lost;

    const second = serveProcess(flags(store));
    const answers = await all((await second.next("serve.listening")).url);
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(a.body.choices[0].message.content).toBe(`echo: ${content(i)}`);
    });
    expect(emu.counters.linesExecuted).toBe(CALLS);
    expect(emu.counters.batchesCreated).toBe(1);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);

    // Answers stay replayable across a clean restart too.
    const third = serveProcess(flags(store));
    const again = await all((await third.next("serve.listening")).url);
    expect(again.map((a) => a.body.choices[0].message.content)).toEqual(
      answers.map((a) => a.body.choices[0].message.content),
    );
    expect(emu.counters.linesExecuted).toBe(CALLS);
    third.child.kill("SIGTERM");
    expect(await third.exited).toBe(0);
  }, 60_000);

  it("SIGTERM past the shutdown grace detaches; the next start finishes the batch without billing it again", async () => {
    emu = await startEmulator();
    const store = join(dir, "term.db");
    const first = serveProcess([...flags(store), "--shutdown-timeout-ms", "50"]);
    const waiting = keyed((await first.next("serve.listening")).url, 0);
    await first.next("batch.submitted");
    first.child.kill("SIGTERM");
    expect((await first.next("serve.shutdown_timeout")).detach).toBe(true);
    expect(await first.exited).toBe(0);
    expect((await waiting).status).toBe(503);

    const second = serveProcess(flags(store));
    const answer = await keyed((await second.next("serve.listening")).url, 0);
    expect(answer.status).toBe(200);
    expect(answer.body.choices[0].message.content).toBe(`echo: ${content(0)}`);
    expect(emu.counters.linesExecuted).toBe(1);
    expect(emu.counters.batchesCreated).toBe(1);
    expect(emu.counters.requests["POST /v1/batches/:id/cancel"] ?? 0).toBe(0);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 60_000);
});
