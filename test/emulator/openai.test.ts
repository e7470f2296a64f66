// OpenAI flavor: JSON errors and explicit nulls, asynchronous validation, result files only at
// the end, cancelling → cancelled, expiry with batch_expired lines, and the official SDK.
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  call,
  chatLine,
  chatLines,
  createBatch,
  getBatch,
  jsonl,
  parseLines,
  startBatch,
  until,
  upload,
  waitFor,
} from "../helpers/emulator-client.js";

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
});
afterAll(() => emu.close());

describe("openai files and errors", () => {
  it("uploads with 200, a file- id and explicit nulls", async () => {
    const res = await upload(emu, jsonl(chatLines(2)));
    expect(res.status).toBe(200);
    const file = res.json();
    expect(file.id).toMatch(/^file-/);
    expect(file).toMatchObject({ object: "file", purpose: "batch", status: "processed", status_details: null });
    const listed = (await call(emu, "GET", "/files")).json();
    expect(listed.data.map((f: { id: string }) => f.id)).toContain(file.id);
  });

  it("answers errors as JSON {error:{message,type,param,code}}", async () => {
    const noPurpose = await upload(emu, jsonl(chatLines(1)), { purpose: null });
    expect(noPurpose.status).toBe(400);
    expect(noPurpose.json().error).toMatchObject({ type: "invalid_request_error", param: "purpose" });
    const missing = await call(emu, "GET", "/batches/batch_nope");
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({
      error: {
        message: "No such Batch object: batch_nope",
        type: "invalid_request_error",
        param: "batch_id",
        code: null,
      },
    });
    const route = await call(emu, "DELETE", "/batches/x");
    expect(route.status).toBe(404);
    expect(route.json().error.message).toMatch(/Unknown route/);
    const file = (await upload(emu, jsonl(chatLines(1)))).json();
    const window = await createBatch(emu, file.id, { completion_window: "2h" });
    expect(window.status).toBe(400);
    expect(window.json().error.param).toBe("completion_window");
    const endpoint = await createBatch(emu, file.id, { endpoint: "/v1/messages" });
    expect(endpoint.json().error.param).toBe("endpoint");
    const unknownFile = await createBatch(emu, "file-missing");
    expect(unknownFile.status).toBe(404);
    expect(unknownFile.json().error.param).toBe("input_file_id");
    const metadata = await createBatch(emu, file.id, {
      metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])),
    });
    expect(metadata.json().error.param).toBe("metadata");
  });
});

describe("openai batches", () => {
  it("creates with nulls, validates asynchronously and exposes results only at the end", async () => {
    const file = (await upload(emu, jsonl(chatLines(3)))).json();
    const res = await createBatch(emu, file.id, { metadata: { job: "a" } });
    expect(res.status).toBe(200);
    const b = res.json();
    expect(b.id).toMatch(/^batch_/);
    expect(b).toMatchObject({
      status: "validating",
      output_file_id: null,
      error_file_id: null,
      errors: null,
      in_progress_at: null,
      completed_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: { job: "a" },
    });
    const done = await waitFor(emu, b.id, ["completed"]);
    expect(done).toMatchObject({
      model: "m",
      error_file_id: null,
      request_counts: { total: 3, completed: 3, failed: 0 },
    });
    expect(done.finalizing_at).toBeTypeOf("number");
    expect(done.usage.total_tokens).toBeGreaterThan(0);
    const content = await call(emu, "GET", `/files/${done.output_file_id}/content`);
    expect(content.headers["x-incomplete"]).toBeUndefined();
    expect(content.headers["x-last-line"]).toBeUndefined();
    const out = parseLines(content.text);
    expect(out.map((l) => l.custom_id).sort()).toEqual(["r0", "r1", "r2"]);
    expect(out[0].response.request_id).toMatch(/^req_/);
    expect((await call(emu, "GET", `/files/${done.output_file_id}`)).json()).toMatchObject({
      purpose: "batch_output",
      filename: `${b.id}_output.jsonl`,
    });
  });

  it("keeps result files hidden until the batch is finished", async () => {
    const slow = await startEmulator({ flavor: "openai", latencyMs: 5000 });
    try {
      const b = await startBatch(slow, chatLines(1));
      await waitFor(slow, b.id, ["in_progress"]);
      const listed = (await call(slow, "GET", "/files")).json();
      expect(listed.data.map((f: { purpose: string }) => f.purpose)).toEqual(["batch"]);
    } finally {
      await slow.close();
    }
  });

  it("reports an all-failed batch as completed with no output file", async () => {
    const b = await startBatch(emu, [chatLine("e1", "x [[status:400]]"), chatLine("e2", "y [[status:503]]")]);
    const done = await waitFor(emu, b.id, ["completed", "failed"]);
    expect(done.status).toBe("completed");
    expect(done.output_file_id).toBeNull();
    expect(done.request_counts).toEqual({ total: 2, completed: 0, failed: 2 });
    const errs = parseLines((await call(emu, "GET", `/files/${done.error_file_id}/content`)).text);
    const e1 = errs.find((l) => l.custom_id === "e1")!;
    expect(e1.error).toBeNull();
    expect(e1.response.status_code).toBe(400);
    expect(e1.response.body.error).toMatchObject({ type: "invalid_request_error", param: null });
    expect(errs.find((l) => l.custom_id === "e2")!.response.body.error.type).toBe("server_error");
  });

  const invalid: Array<[string, unknown[], string, number | null, { maxLines?: number }?]> = [
    ["invalid_json_line", [chatLine("a", "x"), "{oops"], "invalid_json_line", 2],
    ["duplicate_custom_id", [chatLine("a", "x"), chatLine("a", "y")], "duplicate_custom_id", 2],
    [
      "url_mismatch",
      [chatLine("a", "x"), { custom_id: "b", method: "POST", url: "/v1/embeddings", body: { model: "m", input: "x" } }],
      "url_mismatch",
      2,
    ],
    ["model_mismatch", [chatLine("a", "x", "m1"), chatLine("b", "y", "m2")], "model_mismatch", 2],
    ["empty_file", ["", " "], "empty_file", null],
    ["too_many_tasks", chatLines(4), "too_many_tasks", null, { maxLines: 3 }],
  ];
  it.each(invalid)("fails validation with %s", async (_name, content, code, line, options) => {
    const target = options ? await startEmulator({ flavor: "openai", ...options }) : emu;
    try {
      const file = (await upload(target, jsonl(content))).json();
      const b = (await createBatch(target, file.id)).json();
      expect(b.status).toBe("validating");
      const failed = await waitFor(target, b.id, ["failed", "in_progress", "completed"]);
      expect(failed.status).toBe("failed");
      expect(failed.failed_at).toBeTypeOf("number");
      expect(failed.errors.object).toBe("list");
      expect(failed.errors.data[0]).toMatchObject({ code, line });
      expect(failed.output_file_id).toBeNull();
    } finally {
      if (options) await target.close();
    }
  });

  it("cancels: cancelling, then cancelled with the partial results", async () => {
    const small = await startEmulator({ flavor: "openai", concurrency: 2 });
    try {
      const queued = chatLines(50, "queued").map((l) => ({
        ...l,
        body: { ...l.body, messages: [{ role: "user", content: "[[latency:30]]" }] },
      }));
      const b = await startBatch(small, [
        chatLine("done", "x [[latency:1]]"),
        chatLine("inflight", "y [[latency:20]]"),
        ...queued,
      ]);
      await until(async () => (small.lineAvailableAt("done") ? true : undefined), "first line");
      const res = (await call(small, "POST", `/batches/${b.id}/cancel`)).json();
      expect(res.status).toBe("cancelling");
      expect(res.cancelling_at).toBeTypeOf("number");
      expect(res.output_file_id).toBeNull();
      const done = await waitFor(small, b.id, ["cancelled"]);
      expect(done.cancelled_at).toBeTypeOf("number");
      // In-flight lines finish; queued ones never run.
      const out = parseLines((await call(small, "GET", `/files/${done.output_file_id}/content`)).text).map(
        (l) => l.custom_id,
      );
      expect(out).toEqual(expect.arrayContaining(["done", "inflight"]));
      expect(out.length).toBe(done.request_counts.completed);
      expect(out.length).toBeLessThanOrEqual(4);
      expect(done.request_counts.total).toBe(52);
      const again = await call(small, "POST", `/batches/${b.id}/cancel`);
      expect(again.status).toBe(400);
      expect(again.json().error.message).toMatch(/Cannot cancel a batch with status 'cancelled'/);
    } finally {
      await small.close();
    }
  });

  it("cancels a validating batch straight to cancelled", async () => {
    const slow = await startEmulator({ flavor: "openai", validationMs: 60_000 });
    try {
      const b = await startBatch(slow, chatLines(2));
      expect((await call(slow, "POST", `/batches/${b.id}/cancel`)).json().status).toBe("cancelling");
      const after = await getBatch(slow, b.id);
      expect(after.status).toBe("cancelled");
      expect(after.output_file_id).toBeNull();
    } finally {
      await slow.close();
    }
  });
});

describe("openai expiry", () => {
  it("expires when the window passes: finished work kept, the rest batch_expired", async () => {
    let clock = Date.UTC(2030, 0, 1);
    const timed = await startEmulator({ flavor: "openai", now: () => clock });
    try {
      const b = await startBatch(timed, [
        chatLine("fast", "x"),
        chatLine("slow1", "y [[latency:5000]]"),
        chatLine("slow2", "z [[latency:5000]]"),
      ]);
      await until(
        async () => ((await getBatch(timed, b.id)).request_counts.completed === 1 ? true : undefined),
        "fast line",
      );
      expect((await getBatch(timed, b.id)).status).toBe("in_progress");
      clock += 24 * 3600 * 1000;
      const expired = await getBatch(timed, b.id);
      expect(expired.status).toBe("expired");
      expect(expired.expired_at).toBe(Math.floor(clock / 1000));
      expect(expired.request_counts).toEqual({ total: 3, completed: 1, failed: 2 });
      const out = parseLines((await call(timed, "GET", `/files/${expired.output_file_id}/content`)).text);
      expect(out.map((l) => l.custom_id)).toEqual(["fast"]);
      const errs = parseLines((await call(timed, "GET", `/files/${expired.error_file_id}/content`)).text);
      expect(errs.map((l) => l.custom_id).sort()).toEqual(["slow1", "slow2"]);
      expect(errs[0]).toMatchObject({ response: null, error: { code: "batch_expired" } });
      expect(errs[0].error.message).toMatch(/completion window/);
    } finally {
      await timed.close();
    }
  });

  it("expires on demand with expireNow()", async () => {
    const b = await startBatch(emu, [chatLine("x1", "[[latency:5000]]")]);
    await waitFor(emu, b.id, ["in_progress"]);
    emu.expireNow(b.id);
    const expired = await getBatch(emu, b.id);
    expect(expired.status).toBe("expired");
    expect(expired.output_file_id).toBeNull();
    expect(parseLines((await call(emu, "GET", `/files/${expired.error_file_id}/content`)).text)[0].error.code).toBe(
      "batch_expired",
    );
    expect(() => emu.expireNow("batch_unknown")).toThrow(/unknown batch/);
  });
});

describe("the official openai client", () => {
  it.each(["openai", "doubleword"] as const)(
    "uploads, creates, retrieves, lists, cancels and downloads (%s flavor)",
    async (flavor) => {
      const server = await startEmulator({ flavor, apiKey: "sk-emulator" });
      try {
        const client = new OpenAI({ apiKey: "sk-emulator", baseURL: server.baseURL, maxRetries: 0 });
        const file = await client.files.create({
          file: await toFile(Buffer.from(jsonl(chatLines(3, "sdk"))), "sdk.jsonl"),
          purpose: "batch",
        });
        expect(file.purpose).toBe("batch");
        const batch = await client.batches.create({
          input_file_id: file.id,
          endpoint: "/v1/chat/completions",
          completion_window: "24h",
          metadata: { run: "sdk" },
        });
        expect(batch.status).toBe("validating");
        const done = await until(async () => {
          const cur = await client.batches.retrieve(batch.id);
          return cur.status === "completed" ? cur : undefined;
        }, "sdk batch");
        const page = await client.batches.list({ limit: 10 });
        expect(page.data.map((b) => b.id)).toContain(batch.id);
        expect(page.data.find((b) => b.id === batch.id)?.metadata).toMatchObject({ run: "sdk" });
        const text = await (await client.files.content(done.output_file_id!)).text();
        const out = parseLines(text);
        expect(out.map((l) => l.custom_id).sort()).toEqual(["sdk0", "sdk1", "sdk2"]);
        expect(out.find((l) => l.custom_id === "sdk1")!.response.body.choices[0].message.content).toBe("echo: hello 1");

        const slow = await client.batches.create({
          input_file_id: (
            await client.files.create({
              file: await toFile(Buffer.from(jsonl([chatLine("s", "[[latency:5000]]")])), "s.jsonl"),
              purpose: "batch",
            })
          ).id,
          endpoint: "/v1/chat/completions",
          completion_window: "24h",
        });
        const cancelled = await client.batches.cancel(slow.id);
        expect(["cancelling", "cancelled"]).toContain(cancelled.status);
        await expect(
          client.batches.retrieve(flavor === "openai" ? "batch_missing" : "00000000-0000-4000-8000-000000000000"),
        ).rejects.toMatchObject({ status: 404 });
      } finally {
        await server.close();
      }
    },
  );
});
