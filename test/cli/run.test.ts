// `autobatch run` as a child process against the emulator: a realistic file, invalid input, refused reruns,
// SIGKILL and rerun, standard input, and the plain progress lines when stderr is not a terminal.
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { cli, countLines, KEY, readLines, requests, tempDir, until, writeInput } from "./run-harness.js";

let emulator: Emulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, concurrency: 16 });
});
afterAll(() => emulator.close());
beforeEach(() => {
  for (const k of Object.keys(emulator.counters.requests)) delete emulator.counters.requests[k];
  emulator.counters.filesUploaded = 0;
  emulator.counters.linesExecuted = 0;
  emulator.counters.batchesCreated = 0;
});

const FAST = ["--poll-interval-ms", "20", "--batch-window-ms", "20"];

function run(dir: string, args: string[], stdin?: string) {
  return cli(["run", ...args], { OPENAI_BASE_URL: emulator.baseURL }, dir, stdin);
}

/** Every custom_id of the input exactly once across both files. */
function expectOnePerId(input: string[], output: Record<string, any>[], errors: Record<string, any>[]) {
  const ids = [...output, ...errors].map((l) => l.custom_id as string);
  expect(ids.length).toBe(input.length);
  expect(new Set(ids)).toEqual(new Set(input.map((l) => JSON.parse(l).custom_id)));
}

describe("autobatch run", () => {
  it("runs a file with two endpoints and failing lines: each result once, in the provider's shapes", async () => {
    const dir = tempDir();
    const lines = requests(600, { failEvery: 50 });
    const input = writeInput(dir, lines);
    // A long window: files are cut by size (and at the end of the input), never by time.
    const p = run(dir, [
      input,
      "--output",
      "out.jsonl",
      "--batch-size",
      "200",
      "--poll-interval-ms",
      "20",
      "--metadata",
      "project=demo",
    ]);
    expect(await p.exited).toBe(1);
    const out = readLines(join(dir, "out.jsonl"));
    const errors = readLines(join(dir, "out.errors.jsonl"));
    expectOnePerId(lines, out, errors);
    const failing = lines.filter((l) => l.includes("[[status:400]]")).length;
    expect(errors).toHaveLength(failing);
    expect(errors[0]).toMatchObject({
      custom_id: expect.stringMatching(/^chat-/),
      response: { status_code: 400, body: { error: { message: "Emulated failure (HTTP 400)" } } },
      error: null,
    });
    const chat = out.find((l) => l.custom_id === "chat-2")!;
    expect(chat).toMatchObject({ response: { status_code: 200, body: { object: "chat.completion" } }, error: null });
    expect(chat.response.body.choices[0].message.content).toBe("echo: hello 2");
    expect(out.find((l) => l.custom_id === "emb-3")!.response.body.object).toBe("list");
    // Per (endpoint, model) and 200 lines a file: 200 embeddings in 1, 400 chat lines in 2.
    expect(emulator.counters.batchesCreated).toBe(3);
    const listed = (await (await request(`${emulator.baseURL}/batches?limit=3`)).body.json()) as {
      data: { metadata: Record<string, string> }[];
    };
    for (const b of listed.data) expect(b.metadata.project).toBe("demo");
    expect(emulator.counters.linesExecuted).toBe(600);
    const summary = p.stderr();
    expect(summary).toContain(`${600 - failing} succeeded, ${failing} failed, 0 retried, of 600 lines`);
    expect(summary).toContain("3 batches");
    expect(summary).toContain(`errors: out.errors.jsonl`);
    expect(summary + p.stdout()).not.toContain(KEY);

    // The same command again: nothing is sent, nothing written twice.
    const again = run(dir, [input, "--output", "out.jsonl", ...FAST]);
    expect(await again.exited).toBe(1);
    expect(emulator.counters.linesExecuted).toBe(600);
    expect(readLines(join(dir, "out.jsonl"))).toHaveLength(out.length);
    expect(again.stderr()).toContain("(600 from earlier runs)");
  });

  it("exits 0 when every line succeeds, reading standard input", async () => {
    const dir = tempDir();
    const lines = requests(30);
    const p = run(dir, ["-", "--output", "o.jsonl", "--quiet", ...FAST], `${lines.join("\n")}\n`);
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toBe("");
    expect(readLines(join(dir, "o.jsonl"))).toHaveLength(30);
    expect(readLines(join(dir, "o.errors.jsonl"))).toHaveLength(0);
  });

  it("refuses invalid input with exit 2, naming each bad line, and uploads nothing", async () => {
    const dir = tempDir();
    const good = requests(3);
    const bad = [
      good[0],
      "{not json",
      JSON.stringify({ custom_id: "x1", method: "GET", url: "/v1/embeddings", body: { model: "e", input: "a" } }),
      JSON.stringify({ custom_id: "emb-0", method: "POST", url: "/v1/embeddings", body: { model: "e", input: "a" } }),
      JSON.stringify({
        custom_id: "x".repeat(65),
        method: "POST",
        url: "/v1/embeddings",
        body: { model: "e", input: "a" },
      }),
      JSON.stringify({ custom_id: "x2", method: "POST", url: "/v1/images", body: { model: "e" } }),
      JSON.stringify({ custom_id: "x3", method: "POST", url: "/v1/embeddings", body: { input: "a" } }),
      JSON.stringify({
        custom_id: "x4",
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "m", messages: [{ role: "user", content: "a" }], stream: true },
      }),
      JSON.stringify({ method: "POST", url: "/v1/embeddings", body: { model: "e", input: "a" } }),
      "[1, 2]",
    ];
    for (let i = 0; i < 25; i++) bad.push("nope");
    const input = writeInput(dir, bad);
    const p = run(dir, [input, "--output", "out.jsonl"]);
    expect(await p.exited).toBe(2);
    const err = p.stderr();
    expect(err).toContain("34 invalid lines; nothing was uploaded");
    expect(err).toContain("line 2: not valid JSON");
    expect(err).toContain('line 3: method must be "POST" (got "GET")');
    expect(err).toContain('line 4: custom_id "emb-0" is also on line 1');
    expect(err).toContain("line 5: custom_id is 65 characters, more than 64");
    expect(err).toContain('line 6: url "/v1/images" is not a supported endpoint');
    expect(err).toContain("line 7: body: Invalid params for /v1/embeddings: model: model is required");
    expect(err).toContain("line 8: body: stream: true is not supported");
    expect(err).toContain('line 9: missing required field "custom_id"');
    expect(err).toContain("line 10: not a JSON object");
    expect(err).toContain("line 21: not valid JSON");
    expect(err).not.toContain("line 22:");
    expect(err).toContain("… and 14 more");
    expect(emulator.counters.filesUploaded).toBe(0);
    expect(Object.keys(emulator.counters.requests)).toEqual([]);
  });

  it("refuses a rerun with another input on the same output and state", async () => {
    const dir = tempDir();
    const input = writeInput(dir, requests(10));
    expect(await run(dir, [input, "--output", "out.jsonl", "--quiet", ...FAST]).exited).toBe(0);
    const other = writeInput(dir, requests(11), "other.jsonl");
    const p = run(dir, [other, "--output", "out.jsonl", ...FAST]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toMatch(/other\.jsonl is not the input out\.state\.db\.run\.json was made for/);
    expect(readLines(join(dir, "out.jsonl"))).toHaveLength(10);
    // Results of unknown origin (no state) are not added to either.
    const q = run(dir, [other, "--output", "out.jsonl", "--state", "fresh.db", ...FAST]);
    expect(await q.exited).toBe(2);
    expect(q.stderr()).toContain("out.jsonl already has lines but there is no state at fresh.db");
  });

  it("prints the plan with --dry-run and uploads nothing", async () => {
    const dir = tempDir();
    const input = writeInput(dir, requests(90));
    const p = run(dir, [input, "--output", "out.jsonl", "--dry-run", "--batch-size", "40"]);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toMatch(
      /\/v1\/embeddings {2}model e: 30 lines, [\d,]+ bytes, ~[\d,]+ input tokens, 1 batch file/,
    );
    expect(p.stdout()).toMatch(/\/v1\/chat\/completions {2}model m: 60 lines, .* 2 batch files/);
    expect(p.stdout()).toContain("total: 3 batch files");
    expect(Object.keys(emulator.counters.requests)).toEqual([]);
  });

  it("after SIGKILL at several points, the same command finishes: one line per custom_id, each executed once plus once per retry", async () => {
    const dir = tempDir();
    const lines = requests(10_000, { failEvery: 40, onceEvery: 50, extra: " [[latency:2]]" });
    const once = lines.filter((l) => l.includes("[[fail-once")).length;
    const input = writeInput(dir, lines);
    const args = [input, "--output", "out.jsonl", "--batch-size", "1000", ...FAST];
    const out = join(dir, "out.jsonl");
    const written = () => countLines(out) + countLines(join(dir, "out.errors.jsonl"));
    for (const killAt of [1, 2500, 6000]) {
      const p = run(dir, args);
      // 1: killed once the first batch runs, before any result is written.
      // Bounded waits, wide enough for a loaded machine (the suite runs files in parallel on 2 cores).
      if (killAt === 1) await until(() => emulator.counters.linesExecuted > 0, 3000);
      else await until(() => written() >= killAt, 3000);
      p.child.kill("SIGKILL");
      await p.exited;
      expect(written()).toBeLessThan(10_000);
    }
    // A write cut by a crash: half a line at the end.
    appendFileSync(out, '{"id":"x","custom_id":"chat-1","respo');
    const last = run(dir, args);
    expect(await last.exited).toBe(1);
    expect(last.stderr()).toMatch(/out\.jsonl: cut a torn last line \(\d+ bytes\)/);
    expect(readFileSync(out, "utf8").endsWith("\n")).toBe(true);
    expectOnePerId(lines, readLines(out), readLines(join(dir, "out.errors.jsonl")));
    expect(readLines(join(dir, "out.errors.jsonl"))).toHaveLength(lines.filter((l) => l.includes("status:400")).length);
    // The reruns attached to the batches the killed runs had made (the store): nothing was executed twice, and each
    // line that failed once (503) ran once more, in a later batch, and succeeded.
    expect(once).toBeGreaterThan(100);
    expect(emulator.counters.linesExecuted).toBe(10_000 + once);
  }, 240_000);

  it("writes plain progress lines when stderr is not a terminal", async () => {
    const dir = tempDir();
    const input = writeInput(dir, requests(200, { extra: " [[latency:5]]" }));
    const p = run(dir, [input, "--output", "out.jsonl", "--progress-interval-ms", "50", ...FAST]);
    expect(await p.exited).toBe(0);
    const progress = p
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("progress: "));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.at(-1)).toMatch(
      /^progress: 200\/200 lines \(200 ok, 0 failed\), batches 2 completed, [\d.]+ lines\/s, ETA 0s, tokens \d+ in \d+ out$/,
    );
    expect(p.stderr()).not.toContain("\r");
    expect(p.stderr()).not.toContain("\u001b");
  });

  it("refuses a --state file that is not a store, naming it, and sends nothing", async () => {
    const dir = tempDir();
    const input = writeInput(dir, requests(5));
    writeFileSync(join(dir, "junk.db"), "this is not a database, just text that happens to be here".repeat(100));
    const p = run(dir, [input, "--output", "out.jsonl", "--state", "junk.db", ...FAST]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toMatch(/--state junk\.db: .*junk\.db/);
    expect(emulator.counters.filesUploaded).toBe(0);
  });

  it("exits 2 on bad flags and names the flag", async () => {
    const dir = tempDir();
    const p = run(dir, ["in.jsonl", "--output", "o.jsonl", "--batch-size", "60000"]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("--batch-size: at most 50000, got 60000");
    const q = run(dir, ["missing.jsonl", "--output", "o.jsonl"]);
    expect(await q.exited).toBe(2);
    expect(q.stderr()).toContain("missing.jsonl");
  });
});

describe("autobatch run against an unreachable server", () => {
  it("says so and writes no result", async () => {
    const dir = tempDir();
    const input = writeInput(dir, requests(3));
    writeFileSync(join(dir, "x"), "");
    const p = cli(["run", input, "--output", "out.jsonl"], { OPENAI_BASE_URL: "http://127.0.0.1:1/v1" }, dir);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain("cannot use http://127.0.0.1:1/v1");
    expect(readLines(join(dir, "out.jsonl"))).toHaveLength(0);
  }, 60_000);
});
