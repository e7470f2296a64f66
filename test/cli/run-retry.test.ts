// --retry-failed: transient failures (5xx, batch_expired) go into a later batch up to N more times; permanent ones
// (4xx) are written at once. Counted by the emulator: one execution per line plus one per retry.
import { join } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { cli, readLines, tempDir, until, writeInput } from "./run-harness.js";

let emulator: Emulator | undefined;
afterEach(() => emulator?.close());

const chat = (id: string, text: string) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", messages: [{ role: "user", content: text }] },
  });

describe("autobatch run --retry-failed", () => {
  it("resends 5xx lines up to N more times, writes 4xx lines at once", async () => {
    emulator = await startEmulator({ port: 0, flavor: "openai" });
    const lines = Array.from({ length: 200 }, (_, i) =>
      chat(`c${i}`, `q${i}${i % 20 === 0 ? " [[status:500]]" : i % 20 === 1 ? " [[status:400]]" : ""}`),
    );
    const dir = tempDir();
    const input = writeInput(dir, lines);
    const p = cli(
      [
        "run",
        input,
        "--output",
        "out.jsonl",
        "--retry-failed",
        "2",
        "--poll-interval-ms",
        "20",
        "--batch-window-ms",
        "20",
      ],
      { OPENAI_BASE_URL: emulator.baseURL },
      dir,
    );
    expect(await p.exited).toBe(1);
    const errors = readLines(join(dir, "out.errors.jsonl"));
    expect(errors).toHaveLength(20);
    expect(errors.filter((l) => l.response.status_code === 500)).toHaveLength(10);
    expect(errors.filter((l) => l.response.status_code === 400)).toHaveLength(10);
    expect(readLines(join(dir, "out.jsonl"))).toHaveLength(180);
    // Each line once, plus two more attempts for each of the ten 5xx lines.
    expect(emulator.counters.linesExecuted).toBe(200 + 2 * 10);
    // The run is closing while lines are retried: those one look hands back go out together (a batch per line: 21).
    expect(emulator.counters.batchesCreated).toBeLessThan(10);
    expect(p.stderr()).toContain("180 succeeded, 20 failed, 10 retried, of 200 lines");
  });

  it("sends the lines of an expired batch again, and they succeed", async () => {
    emulator = await startEmulator({ port: 0, flavor: "openai", concurrency: 2 });
    const lines = Array.from({ length: 120 }, (_, i) => chat(`c${i}`, `q${i} [[latency:15]]`));
    const dir = tempDir();
    const input = writeInput(dir, lines);
    const p = cli(
      ["run", input, "--output", "out.jsonl", "--poll-interval-ms", "20", "--batch-window-ms", "20"],
      { OPENAI_BASE_URL: emulator.baseURL },
      dir,
    );
    const emu = emulator;
    let first: { id: string } | undefined;
    await until(async () => {
      const list = (await (await request(`${emu.baseURL}/batches?limit=10`)).body.json()) as {
        data: { id: string; status: string; request_counts: { completed: number } }[];
      };
      first = list.data.find((b) => b.status === "in_progress" && b.request_counts.completed >= 10);
      return first !== undefined;
    });
    emu.expireNow(first!.id);
    expect(await p.exited).toBe(0);
    const out = readLines(join(dir, "out.jsonl"));
    expect(new Set(out.map((l) => l.custom_id)).size).toBe(120);
    expect(readLines(join(dir, "out.errors.jsonl"))).toHaveLength(0);
    expect(emu.counters.batchesCreated).toBeGreaterThanOrEqual(2);
    // Expired lines never ran: every line executed exactly once, in the first batch or the later one.
    expect(emu.counters.linesExecuted).toBe(120);
    expect(p.stderr()).toMatch(/120 succeeded, 0 failed, [1-9]\d* retried, of 120 lines/);
  });
});
