import { describe, expect, it } from "vitest";
import { LINE_TAIL, lineHead, LineSplitter } from "../../src/internal/jsonl.js";

/** Feeds chunks to a LineSplitter; `failAfter` stops the stream early, as a cut would. */
function collect(chunks: (string | Buffer)[], failAfter?: number): { lines: string[]; rest?: string } {
  const splitter = new LineSplitter();
  const lines: string[] = [];
  chunks
    .slice(0, failAfter)
    .forEach((c) => splitter.push(Buffer.isBuffer(c) ? c : Buffer.from(c), (l) => lines.push(l)));
  return { lines, rest: splitter.rest() };
}

describe("lineHead", () => {
  it("with the body and LINE_TAIL, makes one JSON line with custom_id, method, url and body, newline-terminated", () => {
    const line = lineHead('id-"1"', "/v1/chat/completions") + '{"model":"m"}' + LINE_TAIL;
    expect(line.endsWith("\n")).toBe(true);
    expect(JSON.parse(line)).toEqual({
      custom_id: 'id-"1"',
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m" },
    });
  });
});

describe("LineSplitter", () => {
  it("reassembles lines split across chunks, including multi-byte characters", () => {
    const text = '{"a":"héllo"}\n{"b":"wörld"}\n';
    const bytes = Buffer.from(text);
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 10), bytes.subarray(10, 17), bytes.subarray(17)];
    expect(collect(chunks).lines).toEqual(['{"a":"héllo"}', '{"b":"wörld"}']);
  });

  it("leaves an unterminated last line to the caller, drops CR, and keeps blank lines as empty", () => {
    expect(collect(["a\r\n\nb", "c"])).toEqual({ lines: ["a", ""], rest: "bc" });
    expect(collect(["a\n"]).rest).toBeUndefined();
  });

  it("hands over complete lines only when the stream is cut, leaving the partial one as the rest", () => {
    expect(collect(["one\ntw", "o\nthr", "ee\n"], 2)).toEqual({ lines: ["one", "two"], rest: "thr" });
  });

  it("hands over every line of a chunk, with lines straddling both of its ends", () => {
    const lines = Array.from({ length: 50 }, (_, i) => `{"i":${i},"s":"${"ü".repeat(i % 7)}"}`);
    const bytes = Buffer.from(`${lines.join("\r\n")}\r\n`);
    // Every cut point, including inside a multi-byte character and between \r and \n.
    for (let size = 1; size <= 97; size += 3) {
      const chunks = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
      expect(collect(chunks)).toEqual({ lines, rest: undefined });
    }
  });

  it("handles a line spread over many chunks", () => {
    const long = "x".repeat(10_000);
    const chunks = Array.from({ length: 100 }, (_, i) => long.slice(i * 100, (i + 1) * 100));
    expect(collect([...chunks, "\nz\n"]).lines).toEqual([long, "z"]);
  });
});
