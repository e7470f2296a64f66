// Fault injection (status, reset, delay, cut, after-handler) and the /_emulator admin routes.
import { get } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  call,
  chatLine,
  chatLines,
  createBatch,
  jsonl,
  parseLines,
  startBatch,
  upload,
  waitFor,
} from "../helpers/emulator-client.js";

/** Reads a response with node:http so a cut body is observable byte for byte. */
function rawGet(
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; error: boolean }> {
  return new Promise((resolve) => {
    get(url, (res) => {
      const chunks: Buffer[] = [];
      let error = false;
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => (error = true));
      res.on("aborted", () => (error = true));
      res.on("close", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          error: error || !res.complete,
        }),
      );
    }).on("error", () => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), error: true }));
  });
}

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator();
});
afterEach(() => emu.faults.clear());
afterAll(() => emu.close());

describe("fault injection", () => {
  it("answers an injected 429 in Doubleword's JSON shape, once, and counts it", async () => {
    const before = emu.counters.faultsInjected;
    emu.faults.add({ route: "POST /v1/batches", status: 429, headers: { "Retry-After": "0" } });
    const file = (await upload(emu, jsonl(chatLines(1)))).json();
    const first = await createBatch(emu, file.id);
    expect(first.status).toBe(429);
    expect(first.headers["retry-after"]).toBe("0");
    expect(first.json()).toMatchObject({ error: "too_many_requests", retry_after_seconds: 30 });
    expect((await createBatch(emu, file.id)).status).toBe(201);
    expect(emu.counters.faultsInjected).toBe(before + 1);
    expect(emu.faults.list()).toEqual([]);
  });

  it("uses provider defaults for 503 and the OpenAI shape in the openai flavor", async () => {
    emu.faults.add({ route: "GET /v1/batches", status: 503 });
    const dw = await call(emu, "GET", "/batches");
    expect(dw.status).toBe(503);
    expect(dw.headers["retry-after"]).toBe("30");
    expect(dw.json().error).toBe("service_unavailable");

    const oai = await startEmulator({ flavor: "openai" });
    try {
      oai.faults.add({ route: "GET /v1/batches", status: 500 });
      const res = await call(oai, "GET", "/batches");
      expect(res.status).toBe(500);
      expect(res.json().error).toMatchObject({ type: "server_error", message: expect.stringMatching(/Injected/) });
    } finally {
      await oai.close();
    }
  });

  it("honours body, times, after and the :id filter", async () => {
    const a = await startBatch(emu, chatLines(1));
    const b = await startBatch(emu, chatLines(1));
    emu.faults.add({ route: "GET /v1/batches/:id", id: b.id, status: 500, body: "custom failure", times: 2, after: 1 });
    expect((await call(emu, "GET", `/batches/${a.id}`)).status).toBe(200);
    expect((await call(emu, "GET", `/batches/${b.id}`)).status).toBe(200); // let through by `after`
    const hit = await call(emu, "GET", `/batches/${b.id}`);
    expect(hit).toMatchObject({ status: 500, text: "custom failure" });
    expect((await call(emu, "GET", `/batches/${b.id}`)).status).toBe(500);
    expect((await call(emu, "GET", `/batches/${b.id}`)).status).toBe(200);

    const forever = emu.faults.add({ route: "*", status: 502, body: { oops: true }, times: null });
    for (let i = 0; i < 3; i++) expect((await call(emu, "GET", "/files")).json()).toEqual({ oops: true });
    expect(emu.faults.list()[0]).toMatchObject({ faultId: forever, fired: 3 });
    expect(emu.faults.remove(forever)).toBe(true);
    expect((await call(emu, "GET", "/files")).status).toBe(200);
  });

  it("rejects invalid specs", () => {
    expect(() => emu.faults.add({ route: "GET /v1/nope", status: 500 })).toThrow(/unknown route key/);
    expect(() => emu.faults.add({ route: "*", status: 1000 } as never)).toThrow(/invalid fault spec/);
  });

  it("resets the connection without answering", async () => {
    emu.faults.add({ route: "GET /v1/batches", reset: true });
    await expect(call(emu, "GET", "/batches")).rejects.toThrow();
    expect((await call(emu, "GET", "/batches")).status).toBe(200);
  });

  it("answers late with delayMs (a later request overtakes it)", async () => {
    const b = await startBatch(emu, chatLines(1));
    emu.faults.add({ route: "GET /v1/batches/:id", delayMs: 80 });
    const order: string[] = [];
    const slow = call(emu, "GET", `/batches/${b.id}`).then((r) => order.push(`slow:${r.status}`));
    await new Promise((r) => setTimeout(r, 5));
    const fast = call(emu, "GET", `/batches/${b.id}`).then((r) => order.push(`fast:${r.status}`));
    await Promise.all([slow, fast]);
    expect(order).toEqual(["fast:200", "slow:200"]);
  });

  it("cuts a content stream after N bytes, in limit and unlimited mode", async () => {
    const b = await startBatch(emu, chatLines(5));
    await waitFor(emu, b.id, ["completed"]);
    const url = `${emu.baseURL}/files/${b.output_file_id}/content`;
    const full = await rawGet(url);
    expect(full.error).toBe(false);
    for (const query of ["", "?limit=5"]) {
      emu.faults.add({ route: "GET /v1/files/:id/content", cutAfterBytes: 100 });
      const cut = await rawGet(url + query);
      expect(cut.status).toBe(200);
      expect(cut.error).toBe(true);
      expect(cut.body.length).toBe(100);
      expect(full.body.subarray(0, 100).equals(cut.body)).toBe(true);
    }
    expect(parseLines((await call(emu, "GET", `/files/${b.output_file_id}/content`)).text)).toHaveLength(5);
  });

  it("performs the operation but fails the answer with afterHandler (ambiguous create)", async () => {
    const file = (await upload(emu, jsonl(chatLines(1)))).json();
    emu.faults.add({ route: "POST /v1/batches", status: 500, afterHandler: true });
    const res = await createBatch(emu, file.id, { metadata: { key: "ambiguous-1" } });
    expect(res.status).toBe(500);
    const listed = (await call(emu, "GET", "/batches?limit=5")).json();
    const found = listed.data.find((x: { metadata: Record<string, string> }) => x.metadata.key === "ambiguous-1");
    expect(found?.input_file_id).toBe(file.id);

    emu.faults.add({ route: "POST /v1/files", reset: true, afterHandler: true });
    const before = emu.counters.filesUploaded;
    await expect(upload(emu, jsonl(chatLines(1)), { filename: "lost-answer.jsonl" })).rejects.toThrow();
    expect(emu.counters.filesUploaded).toBe(before + 1);
    const files = (await call(emu, "GET", "/files?limit=3")).json();
    expect(files.data.map((f: { filename: string }) => f.filename)).toContain("lost-answer.jsonl");
  });
});

describe("admin routes", () => {
  it("counts requests per route key, uploads, batches, bytes and lines served", async () => {
    const own = await startEmulator();
    try {
      const b = await startBatch(own, chatLines(2));
      await waitFor(own, b.id, ["completed"]);
      const content = await call(own, "GET", `/files/${b.output_file_id}/content?limit=1`);
      await call(own, "GET", "/nope");
      const counters = (await call(own, "GET", "/_emulator/counters")).json();
      expect(counters).toMatchObject({ batchesCreated: 1, filesUploaded: 1, linesExecuted: 2, faultsInjected: 0 });
      expect(counters.requests).toMatchObject({
        "POST /v1/files": 1,
        "POST /v1/batches": 1,
        "GET /v1/files/:id/content": 1,
        unmatched: 1,
      });
      expect(counters.requests["GET /v1/batches/:id"]).toBeGreaterThanOrEqual(1);
      expect(counters.bytesServed[b.output_file_id]).toBe(Buffer.byteLength(content.text));
      expect(counters.linesServed[b.output_file_id]).toBe(1);
      expect(own.counters.batchesCreated).toBe(1);
      const reset = (await call(own, "DELETE", "/_emulator/counters")).json();
      expect(reset).toMatchObject({ batchesCreated: 0, requests: {} });
      expect(own.counters.batchesCreated).toBe(0);
    } finally {
      await own.close();
    }
  });

  it("manages faults across processes", async () => {
    const added = await call(emu, "POST", "/_emulator/faults", {
      json: [
        { route: "GET /v1/files", status: 429, headers: { "retry-after": "0" } },
        { route: "GET /v1/batches", status: 503, times: null },
      ],
    });
    expect(added.status).toBe(201);
    const ids = added.json().ids as string[];
    expect(ids).toHaveLength(2);
    expect((await call(emu, "GET", "/_emulator/faults")).json().data).toHaveLength(2);
    expect((await call(emu, "GET", "/files")).status).toBe(429);
    expect((await call(emu, "DELETE", `/_emulator/faults/${ids[1]}`)).json()).toEqual({ removed: true });
    expect((await call(emu, "GET", "/batches")).status).toBe(200);
    const bad = await call(emu, "POST", "/_emulator/faults", {
      json: [
        { route: "GET /v1/files", status: 500 },
        { route: "x", reset: true },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.json().error).toMatch(/unknown route key/);
    expect((await call(emu, "GET", "/_emulator/faults")).json().data).toEqual([]);
    await call(emu, "POST", "/_emulator/faults", { json: { route: "*", reset: true } });
    expect((await call(emu, "DELETE", "/_emulator/faults")).status).toBe(200);
    expect(emu.faults.list()).toEqual([]);
    const notJson = await call(emu, "POST", "/_emulator/faults", { body: "nope" });
    expect(notJson.status).toBe(400);
    expect(notJson.json()).toEqual({ error: "body is not JSON" });
    const huge = await call(emu, "POST", "/_emulator/faults", {
      json: { route: "*", reset: true, pad: "x".repeat(1024 * 1024) },
    });
    expect(huge.status).toBe(400);
    expect(huge.json()).toEqual({ error: "body too large" });
    expect(emu.faults.list()).toEqual([]);
  });

  it("reports line availability times, expires batches and describes itself", async () => {
    const b = await startBatch(emu, [chatLine("avail-1", "a"), chatLine("avail-2", "b [[drop]]")]);
    await waitFor(emu, b.id, ["completed"]);
    const some = (await call(emu, "GET", "/_emulator/lines?ids=avail-1,avail-2,missing")).json();
    expect(some["avail-1"]).toBe(emu.lineAvailableAt("avail-1"));
    expect(some["avail-2"]).toBeNull();
    expect(some.missing).toBeNull();
    const all = (await call(emu, "GET", "/_emulator/lines")).json();
    expect(all["avail-1"]).toBeTypeOf("number");
    expect((await call(emu, "GET", "/_emulator/info")).json()).toEqual({
      flavor: "doubleword",
      contentCursorParam: "skip",
    });
    expect((await call(emu, "GET", "/_emulator/nothing")).status).toBe(404);

    const oai = await startEmulator({ flavor: "openai" });
    try {
      const slow = await startBatch(oai, [chatLine("e", "[[latency:5000]]")]);
      await waitFor(oai, slow.id, ["in_progress"]);
      expect((await call(oai, "POST", `/_emulator/batches/${slow.id}/expire`)).json()).toEqual({ expired: true });
      expect((await call(oai, "GET", `/batches/${slow.id}`)).json().status).toBe("expired");
      expect((await call(oai, "POST", "/_emulator/batches/batch_x/expire")).status).toBe(404);
    } finally {
      await oai.close();
    }
  });
});

describe("lifecycle", () => {
  it("close() stops in-flight work and frees the port", async () => {
    const own = await startEmulator({ latencyMs: 10_000 });
    const b = await startBatch(own, chatLines(3));
    await waitFor(own, b.id, ["in_progress"]);
    await own.close();
    await own.close();
    await expect(call(own, "GET", "/batches")).rejects.toThrow();
    expect(own.counters.linesExecuted).toBe(0);
  });

  it("evicts the oldest finished batches beyond maxStoredBytes", async () => {
    const tiny = await startEmulator({ maxStoredBytes: 6000 });
    try {
      const first = await startBatch(tiny, chatLines(3, "old"));
      await waitFor(tiny, first.id, ["completed"]);
      for (let i = 0; i < 4; i++) {
        const b = await startBatch(tiny, chatLines(3, `new${i}-`));
        await waitFor(tiny, b.id, ["completed"]);
      }
      expect((await call(tiny, "GET", `/batches/${first.id}`)).status).toBe(404);
      expect(tiny.lineAvailableAt("old0")).toBeUndefined();
      expect(tiny.lineAvailableAt("new3-0")).toBeTypeOf("number");
    } finally {
      await tiny.close();
    }
  });
});
