// `autobatch batches` as a child process against the emulator: list, get, cancel, and results --follow on a batch
// that is still running (both files, each line once, across a response cut short).
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { chatLine, getBatch, startBatch, waitFor } from "../helpers/emulator-client.js";
import { cli, KEY, readLines, tempDir } from "./run-harness.js";

let emulator: Emulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, concurrency: 4 });
});
afterAll(() => emulator.close());

const batches = (args: string[], dir = tempDir()) =>
  cli(["batches", ...args], { OPENAI_BASE_URL: emulator.baseURL }, dir);

/** `n` chat lines, every 7th failing with a 500, each taking `ms`. */
const lines = (n: number, ms: number) =>
  Array.from({ length: n }, (_, i) =>
    chatLine(`L${i}`, `q${i} [[latency:${ms}]]${i % 7 === 3 ? " [[status:500]]" : ""}`),
  );

describe("autobatch batches", () => {
  it("results --follow streams a running batch's output and error files, each line once", async () => {
    const batch = await startBatch(emulator, lines(240, 100));
    const dir = tempDir();
    // One content read cut short after 300 bytes: the reader resumes after the last whole line.
    emulator.faults.add({ route: "GET /v1/files/:id/content", cutAfterBytes: 300, after: 1 });
    const before = emulator.counters.requests["GET /v1/files/:id/content"] ?? 0;
    const p = batches(["results", batch.id, "--output", "r.jsonl", "--follow", "--poll-interval-ms", "30"], dir);
    expect((await getBatch(emulator, batch.id)).status).toBe("in_progress");
    expect(await p.exited).toBe(0);
    expect(emulator.faults.list()).toEqual([]);
    const out = readLines(join(dir, "r.jsonl"));
    const errors = readLines(join(dir, "r.errors.jsonl"));
    const ids = [...out, ...errors].map((l) => l.custom_id);
    expect(ids).toHaveLength(240);
    expect(new Set(ids).size).toBe(240);
    expect(errors).toHaveLength(lines(240, 0).filter((l) => JSON.stringify(l).includes("status:500")).length);
    expect(out[0].response.status_code).toBe(200);
    // Read as it grew: many partial reads, not one download at the end.
    expect((emulator.counters.requests["GET /v1/files/:id/content"] ?? 0) - before).toBeGreaterThan(2);
    expect(p.stderr()).toContain(`batch ${batch.id} ended completed: ${out.length} output lines → r.jsonl`);
  }, 60_000);

  it("lists, gets and cancels; unknown ids and unreachable servers are clear errors", async () => {
    const batch = await startBatch(emulator, lines(50, 2000));
    const list = batches(["list", "--limit", "5"]);
    expect(await list.exited).toBe(0);
    expect(list.stdout()).toContain(`${batch.id}  in_progress  /v1/chat/completions`);
    const get = batches(["get", batch.id]);
    expect(await get.exited).toBe(0);
    expect(JSON.parse(get.stdout())).toMatchObject({ id: batch.id, endpoint: "/v1/chat/completions" });
    const cancel = batches(["cancel", batch.id]);
    expect(await cancel.exited).toBe(0);
    expect(cancel.stdout()).toMatch(new RegExp(`^${batch.id}  cancel`));
    await waitFor(emulator, batch.id, ["cancelled"]);

    const unknown = batches(["get", "00000000-0000-0000-0000-000000000000"]);
    expect(await unknown.exited).toBe(1);
    expect(unknown.stderr()).toMatch(/autobatch batches: (no batch '00000000-0000-0000-0000-000000000000'|get 0)/);
    const down = cli(["batches", "list"], { OPENAI_BASE_URL: "http://127.0.0.1:1/v1" }, tempDir());
    expect(await down.exited).toBe(1);
    expect(down.stderr()).toContain("autobatch batches: cannot reach http://127.0.0.1:1/v1");
    const bad = batches(["results", batch.id]);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain("results needs --output FILE");
    expect(list.stdout() + get.stdout() + unknown.stderr()).not.toContain(KEY);
  }, 60_000);
});
