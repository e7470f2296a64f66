// Doubleword flavor: upload validation, batch objects, status machine, the skip/limit content
// protocol, cancel and delete semantics (docs/protocols.md §1-§7, §11).
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({ port: 0 });
});
afterAll(() => emu.close());

describe("doubleword uploads", () => {
  it("stores a valid file: 201, bare UUID, unset fields omitted", async () => {
    const res = await upload(emu, jsonl(chatLines(3)), { filename: "in.jsonl" });
    expect(res.status).toBe(201);
    const file = res.json();
    expect(file.id).toMatch(UUID);
    expect(file).toMatchObject({ object: "file", filename: "in.jsonl", purpose: "batch" });
    expect(file.bytes).toBe(Buffer.byteLength(jsonl(chatLines(3))));
    expect(file.expires_at - file.created_at).toBe(30 * 24 * 3600);
    expect("status" in file).toBe(false);
    expect(Object.values(file)).not.toContain(null);

    const got = await call(emu, "GET", `/files/${file.id}`);
    expect(got.json()).toEqual(file);
    const second = (await upload(emu, jsonl(chatLines(1)))).json();
    const listed = (await call(emu, "GET", "/files?limit=1")).json();
    expect(listed).toMatchObject({ object: "list", has_more: true, first_id: second.id, last_id: second.id });
    const next = (await call(emu, "GET", `/files?limit=1&after=${second.id}`)).json();
    expect(next.data[0]).toEqual(file);
    expect((await call(emu, "GET", "/files?order=sideways")).status).toBe(400);
  });

  it("accepts a missing purpose, duplicate custom_ids, mixed urls and blank lines", async () => {
    const content = jsonl([
      chatLine("same", "a"),
      "",
      "   ",
      chatLine("same", "b", "other-model"),
      { custom_id: "e", method: "post", url: "/v1/embeddings", body: { model: "e", input: "x" } },
    ]);
    const res = await upload(emu, content, { purpose: null });
    expect(res.status).toBe(201);
    expect(res.json().purpose).toBe("batch");
    const batch = (await createBatch(emu, res.json().id)).json();
    expect(batch.request_counts.total).toBe(3);
  });

  const bad: Array<[string, string, RegExp]> = [
    ["invalid JSON", jsonl([chatLine("a", "x")]) + "{nope\n", /^Invalid JSON on line 2: /],
    [
      "a missing field",
      jsonl([{ method: "POST", url: "/v1/chat/completions", body: { model: "m" } }]),
      /^Invalid JSON on line 1: missing field `custom_id`$/,
    ],
    [
      "a mistyped field",
      jsonl([{ custom_id: 5, method: "POST", url: "/v1/chat/completions", body: { model: "m" } }]),
      /^Invalid JSON on line 1: invalid type: integer `5`, expected a string$/,
    ],
    ["a long custom_id", jsonl([chatLine("x".repeat(65), "a")]), /^Line 1: custom_id exceeds/],
    ["a custom_id that is not header-safe", jsonl([chatLine("bad\u0001id", "a")]), /^Line 1: custom_id contains/],
    ["a non-POST method", jsonl([{ ...chatLine("a", "x"), method: "GET" }]), /^Line 1: Unsupported HTTP method 'GET'/],
    [
      "an unknown url",
      jsonl([{ ...chatLine("a", "x"), url: "/v1/nope" }]),
      /^Line 1: Unsupported URL path '\/v1\/nope'/,
    ],
    ["a missing model", jsonl([{ ...chatLine("a", "x"), body: { messages: [] } }]), /^Line 1: Missing 'model' field/],
    // Blank lines are not counted: the bad line is the 2nd non-blank one.
    [
      "a bad line after blank lines",
      `\n\n${JSON.stringify(chatLine("a", "x"))}\n\n\n{"custom_id":"b"}\n`,
      /^Invalid JSON on line 2: missing field `method`$/,
    ],
    ["an empty file", "\n  \n", /^File contains no valid request templates$/],
  ];
  it.each(bad)("rejects %s with a 400 text error", async (_name, content, message) => {
    const res = await upload(emu, content);
    expect(res.status).toBe(400);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.text).toMatch(message);
  });

  it("rejects invalid UTF-8, a wrong purpose, a missing file part and a non-multipart body", async () => {
    const utf8 = await upload(
      emu,
      Buffer.concat([Buffer.from(JSON.stringify(chatLine("a", "x")) + "\n"), Buffer.from([0xff, 0xfe, 0x0a])]),
    );
    expect(utf8.status).toBe(400);
    expect(utf8.text).toMatch(/invalid UTF-8 on\/near line 2 at byte offset \d+/);

    const purpose = await upload(emu, jsonl(chatLines(1)), { purpose: "assistants" });
    expect(purpose.status).toBe(400);
    expect(purpose.text).toBe("Invalid purpose 'assistants'. Only 'batch' is supported.");

    const boundary = "XyZ";
    const noFile = await call(emu, "POST", "/files", {
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`,
    });
    expect(noFile.status).toBe(400);
    expect(noFile.text).toBe("No file field found in multipart upload");

    const notMultipart = await call(emu, "POST", "/files", { json: { file: "x" } });
    expect(notMultipart.status).toBe(400);

    const truncated = await call(emu, "POST", "/files", {
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n${JSON.stringify(chatLine("a", "x"))}\n`,
    });
    expect(truncated.status).toBe(400);
    expect(truncated.text).toMatch(/multipart/i);
    // The server is still healthy.
    expect((await upload(emu, jsonl(chatLines(1)))).status).toBe(201);
  });

  it("parses multipart fields in any order, split across arbitrary chunk boundaries", async () => {
    const boundary = "----b0undary";
    const body = Buffer.from(
      `preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n` +
        jsonl(chatLines(2)) +
        `\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`,
    );
    const res = await call(emu, "POST", "/files", {
      headers: { "content-type": `multipart/form-data; boundary="${boundary}"` },
      body,
    });
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ filename: "x.jsonl", bytes: Buffer.byteLength(jsonl(chatLines(2))) });
  });

  it("answers 413 for oversized files, by Content-Length and while streaming", async () => {
    const small = await startEmulator({ maxFileBytes: 2000 });
    try {
      const big = jsonl(chatLines(60));
      const res = await upload(small, big);
      expect(res.status).toBe(413);
      expect(res.text).toBe("File exceeds the maximum allowed size of 2000 bytes");
      // Chunked (no Content-Length): detected while streaming.
      const boundary = "B";
      const body = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n${big}\r\n--${boundary}--\r\n`,
      );
      const { request } = await import("undici");
      const streamed = await request(`${small.baseURL}/files`, {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body: Readable.from(
          (function* () {
            for (let i = 0; i < body.length; i += 500) yield body.subarray(i, i + 500);
          })(),
        ),
      });
      expect(streamed.statusCode).toBe(413);
      await streamed.body.text();
      expect((await upload(small, jsonl(chatLines(1)))).status).toBe(201);
    } finally {
      await small.close();
    }
  });
});

describe("doubleword batches", () => {
  it("creates a batch: 201, ids present from creation, total pre-filled, metadata filtered", async () => {
    const file = (await upload(emu, jsonl(chatLines(4)))).json();
    const res = await createBatch(emu, file.id, {
      completion_window: "1h",
      metadata: { job: "j1", request_source: "frontend", "Created-By-Email": "x", dw_secret: "y" },
    });
    expect(res.status).toBe(201);
    const b = res.json();
    expect(b.id).toMatch(UUID);
    expect(b).toMatchObject({
      object: "batch",
      status: "validating",
      endpoint: "/v1/chat/completions",
      input_file_id: file.id,
      completion_window: "1h",
      request_counts: { total: 4, completed: 0, failed: 0 },
      metadata: { job: "j1", request_source: "api" },
      dwext: { source: "api" },
    });
    expect(Object.keys(b.metadata).sort()).toEqual(["job", "request_source"]);
    expect(b.output_file_id).toMatch(UUID);
    expect(b.error_file_id).toMatch(UUID);
    expect(b.expires_at - b.created_at).toBe(3600);
    expect(Object.values(b)).not.toContain(null);
    expect("in_progress_at" in b).toBe(false);
    expect("model" in b || "usage" in b || "errors" in b).toBe(false);

    const done = await waitFor(emu, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 4, completed: 4, failed: 0 });
    expect(done.completed_at).toBeTypeOf("number");
    expect(done.finalizing_at).toBeTypeOf("number");
    expect(done.in_progress_at).toBeTypeOf("number");
    const outFile = (await call(emu, "GET", `/files/${b.output_file_id}`)).json();
    expect(outFile).toMatchObject({ purpose: "batch_output", filename: `batch-${b.id}-output.jsonl` });
    expect("expires_at" in outFile).toBe(false);
    const errFile = (await call(emu, "GET", `/files/${b.error_file_id}`)).json();
    expect(errFile).toMatchObject({ purpose: "batch_error", bytes: 0 });
  });

  it("reports an all-failed batch as failed, with Doubleword-shaped error lines", async () => {
    const b = await startBatch(emu, [chatLine("f1", "x [[status:400]]"), chatLine("f2", "y [[status:500]]")]);
    const done = await waitFor(emu, b.id, ["failed", "completed"]);
    expect(done.status).toBe("failed");
    expect(done.failed_at).toBeTypeOf("number");
    expect("completed_at" in done || "finalizing_at" in done).toBe(false);
    const errs = parseLines((await call(emu, "GET", `/files/${b.error_file_id}/content`)).text);
    expect(errs.map((l) => l.custom_id).sort()).toEqual(["f1", "f2"]);
    const line = errs.find((l) => l.custom_id === "f1")!;
    expect(line.id).toMatch(/^batch_req_/);
    expect(line.response).toBeNull();
    expect(line.error.code).toBeNull();
    const reason = JSON.parse(line.error.message as string);
    expect(reason.type).toBe("NonRetriableHttpStatus");
    expect(reason.details.status).toBe(400);
    expect(typeof reason.details.body).toBe("string");
    expect(JSON.parse(reason.details.body).error).toMatchObject({ type: "invalid_request_error", param: null });
  });

  const invalid: Array<[string, Record<string, unknown> | string, number, RegExp, Record<string, string>?]> = [
    ["an unsupported endpoint", { endpoint: "/v1/moderations" }, 400, /^Unsupported endpoint '\/v1\/moderations'/],
    [
      "an unsupported window",
      { completion_window: "7d" },
      400,
      /^Unsupported completion_window\. Allowed values: 24h, 1h$/,
    ],
    ["a malformed file id", { input_file_id: "file-abc" }, 400, /^Invalid file ID format$/],
    [
      "an unknown file id",
      { input_file_id: "00000000-0000-4000-8000-000000000000" },
      404,
      /^File with ID 00000000-0000-4000-8000-000000000000 not found$/,
    ],
    ["a missing field", { endpoint: undefined }, 422, /missing field `endpoint`/],
    ["a non-string metadata value", { metadata: { n: 1 } }, 422, /metadata\.n: invalid type/],
    ["a non-JSON body", "{not json", 400, /^Failed to parse the request body as JSON/],
    ["a missing content type", "{}", 415, /Content-Type: application\/json/, { "content-type": "" }],
    [
      "a body over 1 MiB",
      JSON.stringify({ pad: "x".repeat(1024 * 1024) }),
      413,
      /^Request body exceeds 1048576 bytes$/,
    ],
  ];
  it.each(invalid)("rejects %s", async (_name, patch, status, message, headers) => {
    const file = (await upload(emu, jsonl(chatLines(1)))).json();
    const body =
      typeof patch === "string"
        ? { body: patch, headers: headers ?? { "content-type": "application/json" } }
        : { json: { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", ...patch } };
    const res = await call(emu, "POST", "/batches", body);
    expect(res.status).toBe(status);
    expect(res.text).toMatch(message);
  });

  it("answers 400 for malformed ids and 404 for unknown ones, in plain text", async () => {
    expect(await call(emu, "GET", "/batches/batch_1")).toMatchObject({ status: 400, text: "Invalid batch ID format" });
    const unknown = "11111111-1111-4111-8111-111111111111";
    expect(await call(emu, "GET", `/batches/${unknown}`)).toMatchObject({
      status: 404,
      text: `Batch with ID ${unknown} not found`,
    });
    expect(await call(emu, "GET", `/files/${unknown}/content`)).toMatchObject({
      status: 404,
      text: `File with ID ${unknown} not found`,
    });
    expect(await call(emu, "DELETE", "/files/nope")).toMatchObject({ status: 400, text: "Invalid file ID format" });
    const route = await call(emu, "GET", "/v1/nothing-here");
    expect(route.status).toBe(404);
    expect(route.headers["content-type"]).toMatch(/^text\/plain/);
  });

  it("routes with query strings and trailing slashes", async () => {
    const b = await startBatch(emu, chatLines(1));
    expect((await call(emu, "GET", `/batches/${b.id}/?foo=bar`)).json().id).toBe(b.id);
    expect((await call(emu, "GET", "/batches/?limit=1")).json().object).toBe("list");
  });

  it("lists batches newest first with after/limit pagination", async () => {
    const own = await startEmulator();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await startBatch(own, chatLines(1), { metadata: { i: String(i) } })).id);
      const newestFirst = [...ids].reverse();
      const p1 = (await call(own, "GET", "/batches?limit=2")).json();
      expect(p1.data.map((b: { id: string }) => b.id)).toEqual(newestFirst.slice(0, 2));
      expect(p1).toMatchObject({ has_more: true, first_id: newestFirst[0], last_id: newestFirst[1] });
      const p2 = (await call(own, "GET", `/batches?limit=2&after=${p1.last_id}`)).json();
      expect(p2.data.map((b: { id: string }) => b.id)).toEqual(newestFirst.slice(2, 4));
      const p3 = (await call(own, "GET", `/batches?limit=2&after=${p2.last_id}`)).json();
      expect(p3.data.map((b: { id: string }) => b.id)).toEqual(newestFirst.slice(4));
      expect(p3.has_more).toBe(false);
      // A non-UUID cursor is ignored; limit clamps to [1, 101]; the default is 20.
      expect((await call(own, "GET", "/batches?after=zzz&limit=0")).json().data).toHaveLength(1);
      expect((await call(own, "GET", "/batches")).json().data).toHaveLength(5);
      const empty = await startEmulator();
      expect((await call(empty, "GET", "/batches")).json()).toEqual({ object: "list", data: [], has_more: false });
      await empty.close();
    } finally {
      await own.close();
    }
  });

  it("shows expired_at once the window has passed but keeps working (never `expired`)", async () => {
    let clock = Date.UTC(2030, 0, 1);
    const timed = await startEmulator({ now: () => clock, validationMs: 5 });
    try {
      const b = await startBatch(timed, chatLines(2));
      clock += 25 * 3600 * 1000;
      const after = await waitFor(timed, b.id, ["completed"]);
      expect(after.expired_at).toBe(b.expires_at);
    } finally {
      await timed.close();
    }
  });
});

describe("doubleword content protocol", () => {
  let batch: Record<string, any>;
  beforeAll(async () => {
    batch = await startBatch(emu, chatLines(5, "c"));
    await waitFor(emu, batch.id, ["completed"]);
  });
  const content = (q = "", id = batch.output_file_id as string) => call(emu, "GET", `/files/${id}/content${q}`);

  it("streams everything unlimited, chunked, with X-Last-Line and X-Incomplete", async () => {
    const res = await content();
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    expect(res.headers["transfer-encoding"]).toBe("chunked");
    expect(res.headers["x-incomplete"]).toBe("false");
    expect(res.headers["x-last-line"]).toBe("5");
    expect(res.text.endsWith("\n")).toBe(true);
    const got = parseLines(res.text);
    expect(got.map((l) => l.custom_id).sort()).toEqual(["c0", "c1", "c2", "c3", "c4"]);
    for (const l of got) {
      expect(l.response.status_code).toBe(200);
      expect(l.response.request_id).toBeNull();
      expect(l.response.body.choices[0].message.content).toBe(`echo: hello ${(l.custom_id as string).slice(1)}`);
    }
  });

  it("skips, pages, clamps and reports positions exactly", async () => {
    const all = parseLines((await content()).text).map((l) => l.custom_id);
    const skip2 = await content("?skip=2");
    expect(parseLines(skip2.text).map((l) => l.custom_id)).toEqual(all.slice(2));
    expect(skip2.headers["x-last-line"]).toBe("5");

    const page = await content("?skip=1&limit=2");
    expect(page.headers["content-length"]).toBe(String(Buffer.byteLength(page.text)));
    expect(parseLines(page.text).map((l) => l.custom_id)).toEqual(all.slice(1, 3));
    expect(page.headers).toMatchObject({ "x-last-line": "3", "x-incomplete": "true" });

    const last = await content("?skip=3&limit=2");
    expect(last.headers).toMatchObject({ "x-last-line": "5", "x-incomplete": "false" });

    const clamped = await content("?limit=0");
    expect(parseLines(clamped.text)).toHaveLength(1);
    expect(clamped.headers["x-last-line"]).toBe("1");

    for (const q of ["?skip=9", "?skip=9&limit=3"]) {
      const past = await content(q);
      expect(past.status).toBe(200);
      expect(past.text).toBe("");
      expect(past.headers).toMatchObject({ "x-last-line": "9", "x-incomplete": "false" });
    }
    expect((await content("?skip=-3")).headers["x-last-line"]).toBe("5");
    // `offset` is not a parameter of current servers: it is ignored.
    expect(parseLines((await content("?offset=3")).text)).toHaveLength(5);
    expect((await content("?skip=abc")).status).toBe(400);
  });

  it("filters by custom_id with search (no X-Last-Line unlimited)", async () => {
    const res = await content("?search=C3");
    expect(parseLines(res.text).map((l) => l.custom_id)).toEqual(["c3"]);
    expect(res.headers["x-last-line"]).toBeUndefined();
    expect((await content("?search=c&limit=2&skip=1")).headers["x-last-line"]).toBe("3");
  });

  it("serves input files in input order without X-Last-Line", async () => {
    const res = await content("", batch.input_file_id);
    expect(parseLines(res.text).map((l) => l.custom_id)).toEqual(["c0", "c1", "c2", "c3", "c4"]);
    expect(res.headers["x-incomplete"]).toBe("false");
    expect(res.headers["x-last-line"]).toBeUndefined();
    expect((await content("?limit=2&skip=1", batch.input_file_id)).headers["x-last-line"]).toBe("3");
  });

  it("filters input files by custom_id with search too", async () => {
    expect(parseLines((await content("?search=C3", batch.input_file_id)).text).map((l) => l.custom_id)).toEqual(["c3"]);
    expect(parseLines((await content("?search=c&skip=3", batch.input_file_id)).text).map((l) => l.custom_id)).toEqual([
      "c3",
      "c4",
    ]);
  });

  it("clamps limit to 101 lines", async () => {
    const big = await startBatch(emu, chatLines(120, "big"));
    await waitFor(emu, big.id, ["completed"]);
    const res = await call(emu, "GET", `/files/${big.output_file_id}/content?limit=1000`);
    expect(parseLines(res.text)).toHaveLength(101);
    expect(res.headers).toMatchObject({ "x-last-line": "101", "x-incomplete": "true" });
  });

  it("answers reads while validating with an empty, incomplete body", async () => {
    const slow = await startEmulator({ validationMs: 60_000 });
    try {
      const b = await startBatch(slow, chatLines(3));
      const unlimited = await call(slow, "GET", `/files/${b.output_file_id}/content`);
      expect(unlimited).toMatchObject({ status: 200, text: "" });
      expect(unlimited.headers).toMatchObject({ "x-incomplete": "true", "x-last-line": "0" });
      const limited = await call(slow, "GET", `/files/${b.error_file_id}/content?skip=4&limit=10`);
      expect(limited.headers).toMatchObject({ "x-incomplete": "true", "x-last-line": "4" });
    } finally {
      await slow.close();
    }
  });

  it("reads `offset` instead of `skip` in legacy mode", async () => {
    const legacy = await startEmulator({ contentCursorParam: "offset" });
    try {
      const b = await startBatch(legacy, chatLines(4));
      await waitFor(legacy, b.id, ["completed"]);
      const byOffset = await call(legacy, "GET", `/files/${b.output_file_id}/content?offset=3`);
      expect(parseLines(byOffset.text)).toHaveLength(1);
      expect(byOffset.headers["x-last-line"]).toBe("4");
      const bySkip = await call(legacy, "GET", `/files/${b.output_file_id}/content?skip=3`);
      expect(parseLines(bySkip.text)).toHaveLength(4);
    } finally {
      await legacy.close();
    }
  });
});

describe("doubleword ordering and progress", () => {
  it("appends results in completion order and reports progress as lines finish", async () => {
    const b = await startBatch(emu, [
      chatLine("slow", "a [[latency:150]]"),
      chatLine("fast", "b [[latency:1]]"),
      chatLine("mid", "c [[latency:40]]"),
    ]);
    const first = await until(async () => {
      const res = await call(emu, "GET", `/files/${b.output_file_id}/content`);
      return res.headers["x-last-line"] === "0" ? undefined : res;
    }, "a first result");
    expect(first.headers["x-incomplete"]).toBe("true");
    expect(parseLines(first.text)[0].custom_id).toBe("fast");

    await waitFor(emu, b.id, ["completed"]);
    const order = parseLines((await call(emu, "GET", `/files/${b.output_file_id}/content`)).text).map(
      (l) => l.custom_id,
    );
    expect(order).toEqual(["fast", "mid", "slow"]);
    const times = order.map((id) => emu.lineAvailableAt(id)!);
    expect(times.every((t) => typeof t === "number")).toBe(true);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(emu.lineAvailableAt("never-seen")).toBeUndefined();
  });

  it("splits successes and failures into separate streams with their own cursors", async () => {
    const b = await startBatch(emu, [chatLine("ok1", "a"), chatLine("bad", "b [[status:429]]"), chatLine("ok2", "c")]);
    const done = await waitFor(emu, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    const out = await call(emu, "GET", `/files/${b.output_file_id}/content`);
    const err = await call(emu, "GET", `/files/${b.error_file_id}/content`);
    expect(out.headers["x-last-line"]).toBe("2");
    expect(err.headers["x-last-line"]).toBe("1");
    expect(parseLines(err.text)[0].custom_id).toBe("bad");
  });
});

describe("doubleword cancel and delete", () => {
  it("cancels a running batch at once; cancelled lines appear nowhere", async () => {
    const b = await startBatch(emu, [
      chatLine("quick", "q [[latency:1]]"),
      ...Array.from({ length: 4 }, (_, i) => chatLine(`long${i}`, "l [[latency:5000]]")),
    ]);
    await until(
      async () => ((await getBatch(emu, b.id)).request_counts.completed === 1 ? true : undefined),
      "first completion",
    );
    const res = await call(emu, "POST", `/batches/${b.id}/cancel`);
    expect(res.status).toBe(200);
    const cancelled = res.json();
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.cancelled_at).toBeTypeOf("number");
    expect(cancelled.cancelling_at).toBe(cancelled.cancelled_at);
    expect(cancelled.request_counts).toEqual({ total: 5, completed: 1, failed: 0 });
    const out = await call(emu, "GET", `/files/${b.output_file_id}/content`);
    expect(out.headers["x-incomplete"]).toBe("false");
    expect(parseLines(out.text).map((l) => l.custom_id)).toEqual(["quick"]);
    expect((await call(emu, "GET", `/files/${b.error_file_id}/content`)).text).toBe("");
    // Idempotent.
    const again = (await call(emu, "POST", `/batches/${b.id}/cancel`)).json();
    expect(again.cancelled_at).toBe(cancelled.cancelled_at);
  });

  it("turns a finished batch `cancelled`, keeping completed_at and its output", async () => {
    const b = await startBatch(emu, chatLines(2));
    const done = await waitFor(emu, b.id, ["completed"]);
    const res = (await call(emu, "POST", `/batches/${b.id}/cancel`)).json();
    expect(res.status).toBe("cancelled");
    expect(res.completed_at).toBe(done.completed_at);
    expect(res.request_counts).toEqual(done.request_counts);
    expect(parseLines((await call(emu, "GET", `/files/${b.output_file_id}/content`)).text)).toHaveLength(2);
  });

  it("leaves a batch cancelled while validating `cancelling` forever", async () => {
    const slow = await startEmulator({ validationMs: 20 });
    try {
      const b = await startBatch(slow, chatLines(2));
      const res = (await call(slow, "POST", `/batches/${b.id}/cancel`)).json();
      expect(res.status).toBe("cancelling");
      expect(res.cancelled_at).toBeTypeOf("number");
      await new Promise((r) => setTimeout(r, 60));
      const later = await getBatch(slow, b.id);
      expect(later.status).toBe("cancelling");
      expect(later.request_counts).toEqual({ total: 2, completed: 0, failed: 0 });
      expect(slow.counters.linesExecuted).toBe(0);
      expect((await call(slow, "GET", `/files/${b.output_file_id}/content`)).headers["x-incomplete"]).toBe("true");
    } finally {
      await slow.close();
    }
  });

  it("deleting an input file cancels its live batch and blanks input_file_id; deleting an output file hides it", async () => {
    const file = (await upload(emu, jsonl([chatLine("d1", "x [[latency:5000]]")]))).json();
    const b = (await createBatch(emu, file.id)).json();
    const del = await call(emu, "DELETE", `/files/${file.id}`);
    expect(del.json()).toEqual({ id: file.id, object: "file", deleted: true });
    const after = await getBatch(emu, b.id);
    expect(after.input_file_id).toBe("");
    expect(["cancelled", "cancelling"]).toContain(after.status);
    expect((await call(emu, "GET", `/files/${file.id}`)).status).toBe(404);
    expect((await createBatch(emu, file.id)).status).toBe(404);

    const done = await startBatch(emu, chatLines(1));
    await waitFor(emu, done.id, ["completed"]);
    await call(emu, "DELETE", `/files/${done.output_file_id}`);
    const b2 = await getBatch(emu, done.id);
    expect("output_file_id" in b2).toBe(false);
    expect(b2.error_file_id).toBe(done.error_file_id);

    // The input file's custom_ids name requests, not results: deleting it leaves their results' times.
    const kept = await startBatch(emu, [chatLine("kept-after-input-delete", "x")]);
    await waitFor(emu, kept.id, ["completed"]);
    await call(emu, "DELETE", `/files/${kept.input_file_id}`);
    expect(emu.lineAvailableAt("kept-after-input-delete")).toBeTypeOf("number");
  });
});

describe("doubleword auth", () => {
  let locked: Emulator;
  beforeAll(async () => {
    locked = await startEmulator({ apiKey: "sk-test" });
  });
  afterEach(() => locked.faults.clear());
  afterAll(() => locked.close());

  it("requires the bearer key on /v1 and admin routes", async () => {
    expect((await call(locked, "GET", "/batches")).status).toBe(401);
    expect((await call(locked, "GET", "/batches", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await call(locked, "GET", "/batches", { headers: { authorization: "Bearer sk-test" } })).status).toBe(200);
    expect((await call(locked, "GET", "/_emulator/counters")).status).toBe(401);
    expect(
      (await call(locked, "GET", "/_emulator/counters", { headers: { authorization: "Bearer sk-test" } })).status,
    ).toBe(200);
  });
});
