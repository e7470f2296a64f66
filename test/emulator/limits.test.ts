// The emulator's quota and test-only behaviours: OpenAI's enqueued-token limit, `[[fail-once]]` lines that fail
// their first run only, `[[echo-key]]` lines that quote the key back.
import { afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { chat, KEY, rejection, rig, type Rig } from "../helpers/client.js";
import { call, chatLine, parseLines, startBatch, waitFor } from "../helpers/emulator-client.js";

let emu: Emulator | undefined;
let r: Rig | undefined;
afterEach(async () => {
  await emu?.close();
  await r?.stop();
  emu = r = undefined;
});

/** A line whose prompt is five tokens (words), held running for a minute. */
const held = (id: string, model = "m") => chatLine(id, `one two three four [[latency:60000]]`, model);
const quick = (id: string, model = "m") => chatLine(id, "one two three four five", model);

describe("OpenAI's enqueued-token limit", () => {
  it("accepts a batch over the limit, then fails it with token_limit_exceeded; other models and freed capacity pass", async () => {
    emu = await startEmulator({ flavor: "openai", enqueuedTokenLimit: 15 });
    const running = await startBatch(emu, [held("a1"), held("a2")]);
    await waitFor(emu, running.id, ["in_progress"]);
    const over = await startBatch(emu, [quick("b1"), quick("b2")]);
    expect(over.status).toBe("validating");
    const failed = await waitFor(emu, over.id, ["failed", "completed"]);
    expect(failed.status).toBe("failed");
    expect(failed.errors.data).toEqual([
      {
        code: "token_limit_exceeded",
        param: null,
        line: null,
        message:
          "Enqueued token limit reached for m in organization org-emulator. Limit: 15 enqueued tokens. Please try again once some in_progress batches have been completed.",
      },
    ]);
    const otherModel = await startBatch(emu, [quick("c1", "n"), quick("c2", "n")]);
    expect((await waitFor(emu, otherModel.id, ["failed", "completed"])).status).toBe("completed");
    emu.expireNow(running.id);
    await waitFor(emu, running.id, ["expired"]);
    const after = await startBatch(emu, [quick("d1"), quick("d2")]);
    expect((await waitFor(emu, after.id, ["failed", "completed"])).status).toBe("completed");
  });

  it("is off by default", async () => {
    emu = await startEmulator({ flavor: "openai" });
    const big = await startBatch(
      emu,
      Array.from({ length: 50 }, (_, i) => quick(`x${i}`)),
    );
    expect((await waitFor(emu, big.id, ["failed", "completed"])).status).toBe("completed");
  });
});

describe("test-only line markers", () => {
  it("[[fail-once:NNN]] fails a body's first run with NNN and runs it normally after", async () => {
    emu = await startEmulator({ flavor: "openai" });
    const line = (id: string, text: string) => chatLine(id, text);
    const first = await startBatch(emu, [line("a", "retry me [[fail-once:503]]"), line("b", "me too [[fail-once]]")]);
    const done = await waitFor(emu, first.id, ["completed"]);
    const errors = parseLines((await call(emu, "GET", `/files/${done.error_file_id}/content`)).text);
    expect(errors.map((l) => [l.custom_id, l.response.status_code])).toEqual(
      expect.arrayContaining([
        ["a", 503],
        ["b", 500],
      ]),
    );
    const second = await startBatch(emu, [line("a2", "retry me [[fail-once:503]]")]);
    const ok = await waitFor(emu, second.id, ["completed"]);
    expect(ok.request_counts).toMatchObject({ completed: 1, failed: 0 });
    const out = parseLines((await call(emu, "GET", `/files/${ok.output_file_id}/content`)).text);
    expect(out[0]!.response.body.choices[0].message.content).toBe("echo: retry me [[fail-once:503]]");
  });

  it("[[echo-key]] fails the line with 401 quoting the key, which the client redacts", async () => {
    r = await rig({ batchSize: 1 });
    const err = await rejection(r.client.chat.completions.create(chat("who am I [[echo-key]]")));
    expect(err.status).toBe(401);
    expect(err.message).toContain("Incorrect API key provided: [redacted].");
    expect(JSON.stringify({ ...err, message: err.message })).not.toContain(KEY);
  });
});
