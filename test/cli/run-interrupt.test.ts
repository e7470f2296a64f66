// Ctrl-C: the first SIGINT detaches (batches go on upstream, the resume command is printed without the key) or,
// with --cancel-on-interrupt, cancels the batches; exit 130 either way. The rerun completes the file.
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { cli, countLines, KEY, readLines, requests, tempDir, until, writeInput } from "./run-harness.js";

let emulator: Emulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, concurrency: 4 });
});
afterAll(() => emulator.close());

const FAST = ["--poll-interval-ms", "20", "--batch-size", "100"];

async function statuses(): Promise<string[]> {
  const res = await request(`${emulator.baseURL}/batches?limit=100`);
  return ((await res.body.json()) as { data: { status: string }[] }).data.map((b) => b.status);
}

async function interruptMidRun(dir: string, extra: string[]) {
  const input = writeInput(dir, requests(400, { extra: " [[latency:20]]" }));
  const args = ["run", input, "--output", "out.jsonl", ...FAST, ...extra];
  const p = cli([...args, "--api-key", KEY], { OPENAI_BASE_URL: emulator.baseURL, OPENAI_API_KEY: "" }, dir);
  await until(() => countLines(join(dir, "out.jsonl")) >= 20);
  p.child.kill("SIGINT");
  return { p, input, code: await p.exited };
}

describe("autobatch run, interrupted", () => {
  it("detaches on SIGINT, prints how to resume without the key, and the rerun attaches to its batches", async () => {
    const dir = tempDir();
    const executedBefore = emulator.counters.linesExecuted;
    const { p, input, code } = await interruptMidRun(dir, []);
    expect(code).toBe(130);
    expect(p.stderr()).toContain(
      `detached; the batches go on upstream. Resume with: autobatch run ${input} --output out.jsonl --poll-interval-ms 20 --batch-size 100`,
    );
    expect(p.stderr()).not.toContain(KEY);
    expect(await statuses()).toContain("in_progress");
    const again = cli(["run", input, "--output", "out.jsonl", ...FAST], { OPENAI_BASE_URL: emulator.baseURL }, dir);
    expect(await again.exited).toBe(0);
    const ids = readLines(join(dir, "out.jsonl")).map((l) => l.custom_id);
    expect(ids).toHaveLength(400);
    expect(new Set(ids).size).toBe(400);
    // The detached batches went on and the rerun read them from the store: no line ran twice.
    expect(emulator.counters.linesExecuted - executedBefore).toBe(400);
  }, 60_000);

  it("leaves no copy of standard input behind when interrupted, and the rerun with the same input completes", async () => {
    const dir = tempDir();
    const tmp = join(dir, "tmp");
    mkdirSync(tmp);
    const lines = requests(300, { extra: " [[latency:20]]" });
    const stdin = `${lines.join("\n")}\n`;
    const env = { OPENAI_BASE_URL: emulator.baseURL, TMPDIR: tmp };
    const p = cli(["run", "-", "--output", "out.jsonl", ...FAST], env, dir, stdin);
    await until(() => countLines(join(dir, "out.jsonl")) >= 20);
    p.child.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(p.stderr()).toContain("(with the same standard input)");
    // The spooled copy holds every request of the input: it goes with the run.
    const spooled = () => readdirSync(tmp).filter((f) => f.startsWith("autobatch-run-"));
    expect(spooled()).toEqual([]);
    const again = cli(["run", "-", "--output", "out.jsonl", ...FAST], env, dir, stdin);
    expect(await again.exited).toBe(0);
    expect(new Set(readLines(join(dir, "out.jsonl")).map((l) => l.custom_id)).size).toBe(300);
    expect(spooled()).toEqual([]);
  }, 60_000);

  it("cancels the running batches with --cancel-on-interrupt", async () => {
    const dir = tempDir();
    const before = (await statuses()).filter((s) => s === "cancelled").length;
    const { p, code } = await interruptMidRun(dir, ["--cancel-on-interrupt"]);
    expect(code).toBe(130);
    expect(p.stderr()).toContain("interrupted; cancelling the running batches");
    expect((await statuses()).filter((s) => s === "cancelled").length).toBeGreaterThan(before);
    // Lines released by the cancel are no results: nothing is written for them.
    expect(readLines(join(dir, "out.errors.jsonl"))).toHaveLength(0);
  }, 60_000);
});
