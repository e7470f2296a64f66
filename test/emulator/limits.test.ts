// The emulator's quota and test-only behaviours: OpenAI's enqueued-token limit, `[[fail-once]]` lines that fail
// their first run only, `[[echo-key]]` lines that quote the key back.
import { request } from "undici";
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

describe("provider misbehaviours on demand", () => {
  it("a trickle fault sends the body one byte at a time; the body is whole if the client waits", async () => {
    emu = await startEmulator({ flavor: "openai" });
    const arrivals: number[] = [];
    emu.faults.add({ route: "GET /v1/batches", trickleMs: 1 });
    const res = await request(`${emu.baseURL}/batches`);
    for await (const chunk of res.body as AsyncIterable<Buffer>) arrivals.push(chunk.length);
    expect(arrivals.length).toBeGreaterThan(10);
    expect(Math.max(...arrivals)).toBeLessThanOrEqual(2);
    expect(emu.faults.list()).toEqual([]);
  });

  it("[[oversize:BYTES]] pads the answer's body, making its result line that much longer", async () => {
    emu = await startEmulator({ flavor: "openai" });
    const b = await startBatch(emu, [chatLine("big", "pad me [[oversize:200000]]"), chatLine("small", "plain")]);
    const done = await waitFor(emu, b.id, ["completed"]);
    const out = parseLines((await call(emu, "GET", `/files/${done.output_file_id}/content`)).text);
    const big = out.find((l) => l.custom_id === "big")!;
    expect(big.response.body.emulator_padding).toHaveLength(200_000);
    expect(out.find((l) => l.custom_id === "small")!.response.body.emulator_padding).toBeUndefined();
  });

  it("listLagMs leaves a new batch out of GET /v1/batches until it is that old", async () => {
    let now = 1_000_000;
    emu = await startEmulator({ flavor: "openai", listLagMs: 5_000, now: () => now });
    const b = await startBatch(emu, [chatLine("a", "x")]);
    const ids = async () =>
      (await call(emu!, "GET", "/batches")).json<{ data: { id: string }[] }>().data.map((x) => x.id);
    expect(await ids()).not.toContain(b.id);
    now += 5_000;
    expect(await ids()).toContain(b.id);
  });
});
