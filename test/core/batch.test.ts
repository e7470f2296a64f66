import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BatchFailedError } from "../../src/errors.js";
import { errorLine, fakeProvider, okLine, type Provider } from "../helpers/provider.js";
import { json } from "../helpers/server.js";
import { harness } from "./harness.js";

let p: Provider;
let h: ReturnType<typeof harness>;
beforeEach(async () => {
  p = await fakeProvider();
  h = harness(p.url);
});
afterEach(async () => {
  await h.transport.close();
  await p.close();
});

const content = (file: string) => p.requests("GET", `/v1/files/${file}/content`);
const skipOf = (url: string) => new URL(url, "http://x").searchParams.get("skip");

async function created(n: number) {
  const b = h.batch(n);
  expect(await b.submit(h.stop.signal)).toBe(true);
  return { b, fake: p.batches.get(b.id!)! };
}

describe("Batch: submit", () => {
  it("uploads its file once, creates one batch tagged with its key, and records it", async () => {
    const { b, fake } = await created(3);
    expect(p.uploads).toHaveLength(1);
    expect(p.uploads[0]!.customIds).toEqual(["c0", "c1", "c2"]);
    expect(p.uploads[0]!.filename).toBe(`autobatch-${b.key}.jsonl`);
    expect(fake.metadata).toEqual({ autobatch_key: b.key });
    expect(b.id).toBe("batch_1");
    expect(b.inputFileId).toBe("file-in-1");
    expect(b.output?.fileId).toBe("out_1");
    expect(h.log).toEqual(["submitted batch_1 file-in-1", "progress in_progress 0/0"]);
    expect(h.events.map((e) => e.type)).toEqual(["batchSubmitted"]);
  });

  it("a create refused for good rejects every call with the reason and records the failure", async () => {
    p.once((r) => r.method === "POST" && r.url === "/v1/batches", json(400, { error: { message: "bad endpoint" } }));
    const b = h.batch(2);
    expect(await b.submit(h.stop.signal)).toBe(false);
    expect(h.outcomes.get("c0")).toMatchObject({ ok: false, value: { status: 400 } });
    expect(h.outcomes.get("c1")!.value.message).toMatch(/bad endpoint/);
    expect(h.log[0]).toMatch(/^submitFailed .*bad endpoint/);
    expect(b.unsettled).toBe(0);
  });
});

describe("Batch: poll", () => {
  it("while running, reads only the files its counts say have grown, each from its cursor", async () => {
    const { b, fake } = await created(3);
    await b.poll(h.stop.signal);
    expect(content("out_1")).toHaveLength(0);

    p.files.get("out_1")!.push(okLine("c1"));
    p.incomplete.add("out_1");
    fake.request_counts = { total: 3, completed: 1, failed: 0 };
    await b.poll(h.stop.signal);
    expect(h.outcomes.get("c1")).toMatchObject({ ok: true });
    expect(h.outcomes.get("c1")!.value.choices[0].message.content).toBe("answer c1");
    expect(b.output?.next).toBe(1);

    await b.poll(h.stop.signal);
    expect(content("out_1")).toHaveLength(1);
    expect(content("err_1")).toHaveLength(0);

    p.files.get("out_1")!.push(okLine("c0"));
    fake.request_counts = { total: 3, completed: 2, failed: 0 };
    await b.poll(h.stop.signal);
    expect(content("out_1").map((r) => skipOf(r.url))).toEqual([null, "1"]);
    expect(h.outcomes.get("c0")?.ok).toBe(true);
    expect(b.done).toBe(false);
    expect(b.unsettled).toBe(1);
  });

  it("once terminal, drains both files, settles each call from its line and rejects a call with no line", async () => {
    const { b, fake } = await created(3);
    p.files.get("out_1")!.push(okLine("c0"));
    p.files.get("err_1")!.push(errorLine("c1", 400, "bad request here"));
    Object.assign(fake, { status: "completed", request_counts: { total: 3, completed: 1, failed: 1 } });
    await b.poll(h.stop.signal);
    expect(h.outcomes.get("c0")?.ok).toBe(true);
    expect(h.outcomes.get("c1")).toMatchObject({ ok: false, value: { status: 400 } });
    const missing = h.outcomes.get("c2")!;
    expect(missing.value).toBeInstanceOf(BatchFailedError);
    expect(missing.value.message).toMatch(/Batch batch_1 ended with status "completed": no result line for this call/);
    expect(b.done).toBe(true);
    const done = h.events.find((e) => e.type === "batchDone");
    expect(done).toMatchObject({ batchId: "batch_1", status: "completed", succeeded: 1, failed: 2, calls: 3 });
  });

  it("a terminal batch whose lines moved is re-read once from the start, and only once", async () => {
    const { b, fake } = await created(2);
    p.files.get("out_1")!.push(okLine("c0"));
    fake.request_counts = { total: 2, completed: 1, failed: 0 };
    await b.poll(h.stop.signal);
    // The line for c1 lands before the one already read: reading on from the cursor cannot find it.
    p.files.get("out_1")!.unshift(okLine("c1"));
    Object.assign(fake, { status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    await b.poll(h.stop.signal);
    expect(h.outcomes.get("c1")?.ok).toBe(true);
    expect(content("out_1").map((r) => skipOf(r.url))).toEqual([null, "1", null]);
    expect(b.done).toBe(true);
  });

  it("drains a terminal file again while the server says X-Incomplete: true", async () => {
    const { b, fake } = await created(2);
    p.files.get("out_1")!.push(okLine("c0"));
    p.incomplete.add("out_1");
    Object.assign(fake, { status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    p.once(
      (r) => r.url.startsWith("/v1/files/out_1/content?skip=1"),
      (_req, res) => {
        p.files.get("out_1")!.push(okLine("c1"));
        p.incomplete.delete("out_1");
        res.writeHead(200, { "x-last-line": "2", "x-incomplete": "false" }).end(`${okLine("c1")}\n`);
      },
    );
    await b.poll(h.stop.signal);
    expect(h.outcomes.get("c1")?.ok).toBe(true);
    expect(content("out_1").map((r) => skipOf(r.url))).toEqual([null, "1"]);
  });

  it("gives up after three polls in a row that cannot read its status; a good poll in between resets the count", async () => {
    const { b } = await created(1);
    const failStatus = () =>
      p.once((r) => r.method === "GET" && r.url === "/v1/batches/batch_1", json(500, { error: { message: "boom" } }));
    failStatus();
    failStatus();
    await b.poll(h.stop.signal);
    await b.poll(h.stop.signal);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(false);
    for (let i = 0; i < 3; i++) failStatus();
    await b.poll(h.stop.signal);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(false);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(true);
    expect(h.outcomes.get("c0")!.value.message).toMatch(/its status could not be read .*boom/);
  });

  it("a terminal batch whose files cannot be read is kept for the next poll, then given up after three", async () => {
    const { b, fake } = await created(1);
    Object.assign(fake, { status: "completed", request_counts: { total: 1, completed: 1, failed: 0 } });
    p.files.get("out_1")!.push(okLine("c0"));
    // Four attempts per read (one plus three resumes): the first two polls fail, the third succeeds.
    for (let i = 0; i < 8; i++)
      p.once((r) => r.url.startsWith("/v1/files/out_1/content"), json(500, { error: { message: "disk" } }));
    await b.poll(h.stop.signal);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(false);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(true);
    expect(h.outcomes.get("c0")?.ok).toBe(true);
  });

  it("a batch gone upstream (404) finishes at once", async () => {
    const { b } = await created(1);
    p.batches.delete("batch_1");
    await b.poll(h.stop.signal);
    expect(b.done).toBe(true);
    expect(h.outcomes.get("c0")!.value.message).toMatch(/no longer exists upstream \(404\)/);
  });

  it("a running batch past its deadline is given up on; before it, it is not", async () => {
    const { b } = await created(1);
    h.clock.tick(60_000);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(false);
    h.clock.tick(1);
    await b.poll(h.stop.signal);
    expect(b.done).toBe(true);
    expect(h.outcomes.get("c0")!.value.message).toMatch(/still not finished long after its completion window/);
  });

  it("every change of its state reaches the recorder, in order", async () => {
    const { b, fake } = await created(2);
    p.files.get("out_1")!.push(okLine("c1"));
    p.files.get("err_1")!.push(errorLine("c0", 400));
    Object.assign(fake, { status: "completed", request_counts: { total: 2, completed: 1, failed: 1 } });
    await b.poll(h.stop.signal);
    expect(h.log).toEqual([
      "submitted batch_1 file-in-1",
      "progress in_progress 0/0",
      "progress completed 1/1",
      "settled c1 true",
      "cursor output 1",
      "settled c0 false",
      "cursor error 1",
      "finished no result line for this call",
    ]);
  });
});

describe("Batch: transient lines", () => {
  it("hands a transiently failed call back instead of settling it; finishing the batch leaves it alone", async () => {
    await h.transport.close();
    h = harness(p.url, {}, 60_000, 1);
    const { b, fake } = await created(3);
    p.files.get("err_1")!.push(errorLine("c0", 503), errorLine("c1", 400));
    p.files.get("out_1")!.push(okLine("c2"));
    Object.assign(fake, { status: "completed", request_counts: { total: 3, completed: 1, failed: 2 } });
    await b.poll(h.stop.signal);
    expect(h.retried.map((c) => [c.customId, c.retries])).toEqual([["c0", 1]]);
    expect(h.outcomes.has("c0")).toBe(false);
    expect(h.outcomes.get("c1")).toMatchObject({ ok: false, value: { status: 400 } });
    expect(b.done).toBe(true);
    expect(h.events.find((e) => e.type === "callRetried")).toMatchObject({ customId: "c0", retry: 1, status: 503 });
    expect(h.events.find((e) => e.type === "batchDone")).toMatchObject({ retried: 1, succeeded: 1, failed: 1 });
    expect(h.events.some((e) => e.type === "warning")).toBe(false);
    expect(h.log).toContain("retried c0");
  });
});
