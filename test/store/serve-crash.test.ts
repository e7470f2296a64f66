// `autobatch serve` on a store, as a real process: SIGKILLed mid-run and restarted on the same store, clients
// retrying with the same Idempotency-Key, or the same unkeyed request (adopting the line its lost client left), are
// answered and each line is billed once; SIGTERM past the shutdown grace detaches instead of cancelling, so the next
// start finishes the batch.
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
async function post(url: string, text: string, headers: Record<string, string> = {}) {
  const res = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: text }] }),
  });
  return {
    status: res.statusCode,
    body: (await res.body.json()) as any,
    customId: res.headers["x-autobatch-custom-id"],
  };
}
const keyed = (url: string, i: number) => post(url, content(i), { "idempotency-key": `key-${i}` });
const all = (url: string) => Promise.all(Array.from({ length: CALLS }, (_, i) => keyed(url, i)));
const flags = (store: string, batch = ["--batch-window-ms", "20"]) => [
  "--store",
  store,
  "--port",
  "0",
  ...batch,
  "--poll-interval-ms",
  "50",
];

/**
 * serve on `store`, SIGKILLed once `send`'s CALLS requests are in a batch upstream (one batch, flushed by size: however
 * slowly they arrive); resolves when it is gone.
 */
async function killedMidRun(store: string, send: (url: string) => Promise<unknown>) {
  const first = serveProcess(flags(store, ["--batch-size", String(CALLS), "--batch-window-ms", "60000"]));
  const listening = await first.next("serve.listening");
  const lost = send(listening.url).catch((e: unknown) => e);
  await first.next("batch.submitted");
  first.child.kill("SIGKILL");
  await first.exited;
  await lost;
  return listening;
}

describe("autobatch serve on a store", () => {
  it("SIGKILLed mid-run and restarted: keyed retries are answered and each line billed once", async () => {
    emu = await startEmulator();
    const store = join(dir, "kill.db");
    expect((await killedMidRun(store, all)).store).toBe(store);

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

  it("SIGKILLed mid-run and restarted: the same unkeyed requests, retried, adopt the lines their clients left", async () => {
    emu = await startEmulator();
    const store = join(dir, "orphans.db");
    // Two of them identical: two orphans alike, each adopted by one retry.
    const texts = [...Array.from({ length: CALLS - 1 }, (_, i) => content(i)), content(0)];
    const unkeyed = (url: string) => Promise.all(texts.map((t) => post(url, t)));
    await killedMidRun(store, unkeyed);

    const second = serveProcess(flags(store));
    const answers = await unkeyed((await second.next("serve.listening")).url);
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(a.body.choices[0].message.content).toBe(`echo: ${texts[i]}`);
    });
    // Each from a line of its own, the identical two included.
    expect(new Set(answers.map((a) => a.customId)).size).toBe(CALLS);
    expect(emu.counters.linesExecuted).toBe(CALLS);
    expect(emu.counters.batchesCreated).toBe(1);
    expect(second.lines.filter((l) => l.event === "batch.resumed")).toHaveLength(1);
    // Adopted once: the same request again is a new line.
    expect((await post((await second.next("serve.listening")).url, texts[0]!)).status).toBe(200);
    expect(emu.counters.linesExecuted).toBe(CALLS + 1);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
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
