import { describe, expect, it } from "vitest";
import { encodeLine, splitLines } from "../src/jsonl.js";

async function collect(chunks: (string | Buffer)[], failAfter?: number): Promise<{ lines: string[]; error?: unknown; rest?: string }> {
  async function* source() {
    let i = 0;
    for (const c of chunks) {
      if (failAfter !== undefined && i++ === failAfter) throw new Error("cut");
      yield Buffer.isBuffer(c) ? c : Buffer.from(c);
    }
  }
  const lines: string[] = [];
  const tail: { rest?: Buffer } = {};
  try {
    for await (const l of splitLines(source(), tail)) lines.push(l.toString());
  } catch (error) {
    return { lines, error };
  }
  return { lines, rest: tail.rest?.toString() };
}

describe("encodeLine", () => {
  it("writes one JSON line with custom_id, method, url and body, newline-terminated", () => {
    const line = encodeLine('id-"1"', "/v1/chat/completions", '{"model":"m"}');
    expect(line.endsWith("\n")).toBe(true);
    expect(JSON.parse(line)).toEqual({ custom_id: 'id-"1"', method: "POST", url: "/v1/chat/completions", body: { model: "m" } });
  });
});

describe("splitLines", () => {
  it("reassembles lines split across chunks, including multi-byte characters", async () => {
    const text = '{"a":"héllo"}\n{"b":"wörld"}\n';
    const bytes = Buffer.from(text);
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 10), bytes.subarray(10, 17), bytes.subarray(17)];
    expect((await collect(chunks)).lines).toEqual(['{"a":"héllo"}', '{"b":"wörld"}']);
  });

  it("leaves an unterminated last line to the caller, drops CR, and keeps blank lines as empty", async () => {
    expect(await collect(["a\r\n\nb", "c"])).toEqual({ lines: ["a", ""], rest: "bc" });
    expect((await collect(["a\n"])).rest).toBeUndefined();
  });

  it("discards a partial line when the stream is cut, after yielding the complete ones", async () => {
    const out = await collect(["one\ntw", "o\nthr", "ee\n"], 2);
    expect(out.lines).toEqual(["one", "two"]);
    expect(out.error).toBeInstanceOf(Error);
  });

  it("handles a line spread over many chunks", async () => {
    const long = "x".repeat(10_000);
    const chunks = Array.from({ length: 100 }, (_, i) => long.slice(i * 100, (i + 1) * 100));
    expect((await collect([...chunks, "\nz\n"])).lines).toEqual([long, "z"]);
  });
});
