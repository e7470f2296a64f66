// The live progress bar in a real terminal: `autobatch run` inside tmux at 80 and 160 columns, read back with
// capture-pane while it runs and after it ends.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { renderBar, type Snapshot } from "../../src/cli/run/progress.js";
import { CLI, KEY, requests, tempDir, TSX, until, writeInput } from "./run-harness.js";

const hasTmux = (() => {
  try {
    execFileSync("tmux", ["-V"]);
    return true;
  } catch {
    return false;
  }
})();

let emulator: Emulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, concurrency: 4 });
});
afterAll(() => emulator.close());

const BAR = /^\[[#.]+\] [\d,]+\/[\d,]+ ok [\d,]+ failed [\d,]+/;

// Skipped only off CI (a developer without tmux); CI installs it (scripts/ci-system-packages.sh) and must run this.
describe.skipIf(!hasTmux && !process.env.CI)("progress in a terminal (tmux)", () => {
  for (const columns of [80, 160]) {
    it(`draws one bar that fits ${columns} columns, redrawn in place, then the summary`, async () => {
      const dir = tempDir();
      const input = writeInput(dir, requests(400, { failEvery: 30, extra: " [[latency:8]]" }));
      const socket = `ab-run-${process.pid}-${columns}`;
      const tmux = (...args: string[]) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
      const command = [
        `cd ${dir} &&`,
        `OPENAI_API_KEY=${KEY} OPENAI_BASE_URL=${emulator.baseURL}`,
        `${process.execPath} --import ${TSX} ${CLI} run ${input} --output out.jsonl --poll-interval-ms 20`,
        "--batch-size 100",
      ].join(" ");
      tmux("-f", "/dev/null", "new-session", "-d", "-s", "run", "-x", String(columns), "-y", "12", command);
      try {
        tmux("set-option", "-t", "run", "remain-on-exit", "on");
        // With the history: frames drawn on new lines instead of in place would all show.
        const screen = () => tmux("capture-pane", "-p", "-S", "-", "-t", "run").split("\n");
        let during: string[] = [];
        await until(() => {
          during = screen();
          return during.some((l) => BAR.test(l) && !l.includes("400/400"));
        });
        await until(() => screen().some((l) => l.startsWith("output: out.jsonl")));
        const after = screen().filter((l) => l.trim() !== "");
        for (const l of [...during, ...after]) expect(l.length).toBeLessThan(columns);
        // Redrawn in place: one bar line on screen at a time, and at the end it shows every line settled.
        expect(during.filter((l) => BAR.test(l))).toHaveLength(1);
        const bars = after.filter((l) => BAR.test(l));
        expect(bars).toHaveLength(1);
        expect(bars[0]).toMatch(/400\/400 ok 386 failed 14/);
        if (columns >= 160)
          expect(bars[0]).toMatch(/\| [\d.k]+\/s ETA 0s \| batches \d+ completed \| tokens \d+ in \d+ out/);
        expect(after.join("\n")).toContain("386 succeeded, 14 failed, 0 retried, of 400 lines");
      } finally {
        tmux("kill-server");
      }
    }, 60_000);
  }
});

describe("renderBar", () => {
  const s: Snapshot = {
    total: 100_000,
    succeeded: 41_234,
    failed: 120,
    batches: { in_progress: 1, completed: 1 },
    tokensIn: 12_345_678,
    tokensOut: 3_456_789,
    rate: 1234.5,
  };
  it("drops segments by priority and keeps within the width", () => {
    for (const w of [20, 40, 60, 80, 100, 120, 160, 240]) {
      const line = renderBar(s, w);
      expect(line.length).toBeLessThan(w);
      expect(line).toContain("41,354/100,000");
    }
    expect(renderBar(s, 80)).toMatch(/^\[[#.]{10,}\] 41,354\/100,000 ok 41,234 failed 120 \| 1235\/s ETA 48s/);
    expect(renderBar(s, 160)).toContain("| batches 1 in_progress, 1 completed | tokens 12.3M in 3.5M out");
  });
  it("fills the bar in proportion", () => {
    const line = renderBar({ ...s, succeeded: 50_000, failed: 0 }, 200);
    const bar = /^\[([#.]+)\]/.exec(line)![1]!;
    expect(bar.split("#").length - 1).toBe(bar.length / 2);
  });
});
