// createBatchingFetch behind the real openai-node v6 client, against the emulator (OpenAI flavor: request ids).
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { createBatchingFetch, type BatchingFetch, type BatchingFetchOptions, type FetchLike } from "../src/fetch.js";

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
});
afterAll(() => emu.close());

const open: BatchingFetch[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close({ cancel: true })));
});

const user = (content: string) => [{ role: "user" as const, content }];

/** A pass-through fetch that records what reached it. */
function spyFetch(answer?: () => Response) {
  const seen: { url: string; method: string; body?: string }[] = [];
  const fetch: FetchLike = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    seen.push({
      url,
      method: init?.method ?? (input instanceof Request ? input.method : "GET"),
      body: typeof init?.body === "string" ? init.body : undefined,
    });
    return answer ? answer() : globalThis.fetch(input, init);
  };
  return { fetch, seen };
}

function setup(options: Partial<BatchingFetchOptions> = {}, client: { maxRetries?: number; timeout?: number } = {}) {
  const spy = spyFetch();
  const batchingFetch = createBatchingFetch({
    apiKey: "test-key",
    baseURL: emu.url,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    fetch: spy.fetch,
    ...options,
  });
  open.push(batchingFetch);
  const openai = new OpenAI({
    apiKey: "test-key",
    baseURL: emu.url,
    fetch: batchingFetch,
    timeout: 60_000,
    maxRetries: 0,
    ...client,
  });
  return { batchingFetch, openai, passedThrough: spy.seen };
}

const submitted = (f: BatchingFetch) =>
  new Promise<string>((resolve) => f.on("batchSubmitted", (e) => resolve(e.batchId)));

describe("createBatchingFetch with openai-node", () => {
  it("puts many concurrent chat calls into one batch file and answers each from its line", async () => {
    const { openai, batchingFetch, passedThrough } = setup({ batchSize: 20, batchWindowMs: 60_000 });
    const files = emu.counters.filesUploaded;
    const batches = emu.counters.batchesCreated;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        openai.chat.completions.create({ model: "gpt-test", messages: user(`q${i}`) }),
      ),
    );
    expect(results.map((r) => r.choices[0]!.message.content)).toEqual(
      Array.from({ length: 20 }, (_, i) => `echo: q${i}`),
    );
    expect(emu.counters.filesUploaded - files).toBe(1);
    expect(emu.counters.batchesCreated - batches).toBe(1);
    expect(batchingFetch.stats.batchesCreated).toBe(1);
    expect(passedThrough).toEqual([]);
    // openai-node read x-request-id and attached it, non-enumerable, as it does for real-time calls.
    expect(results[0]!._request_id).toMatch(/^req_/);
    expect(Object.keys(results[0]!)).not.toContain("_request_id");
  });

  it("raises OpenAI.BadRequestError with the upstream message for a failing line, while its neighbours succeed", async () => {
    const { openai } = setup();
    const [bad, good] = await Promise.allSettled([
      openai.chat.completions.create({ model: "gpt-test", messages: user("[[status:400]] nope") }),
      openai.chat.completions.create({ model: "gpt-test", messages: user("fine") }),
    ]);
    expect(good.status).toBe("fulfilled");
    expect(bad.status).toBe("rejected");
    const err = (bad as PromiseRejectedResult).reason as InstanceType<typeof OpenAI.BadRequestError>;
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.status).toBe(400);
    expect(err.message).toBe("400 Emulated failure (HTTP 400)");
    expect(err.requestID).toMatch(/^req_/);
    expect(err.headers.get("x-autobatch-batch-id")).toBeTruthy();
  });

  it("supports withResponse() and asResponse()", async () => {
    const { openai } = setup();
    const { data, response, request_id } = await openai.chat.completions
      .create({ model: "gpt-test", messages: user("wr") })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("echo: wr");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(request_id).toMatch(/^req_/);
    expect(response.headers.get("x-autobatch-custom-id")).toMatch(/^ab-/);
    const raw = await openai.chat.completions.create({ model: "gpt-test", messages: user("ar") }).asResponse();
    expect(((await raw.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe(
      "echo: ar",
    );
  });

  it("lets the SDK shape embeddings (its base64 default) and responses (output_text)", async () => {
    const { openai } = setup();
    const [b64, floats, response] = await Promise.all([
      openai.embeddings.create({ model: "emb-test", input: ["alpha", "beta"] }),
      openai.embeddings.create({ model: "emb-test", input: ["alpha", "beta"], encoding_format: "float" }),
      openai.responses.create({ model: "gpt-test", input: "resp" }),
    ]);
    expect(b64.data).toHaveLength(2);
    expect(Array.isArray(b64.data[0]!.embedding)).toBe(true);
    b64.data[0]!.embedding.forEach((v, i) => expect(v).toBeCloseTo(floats.data[0]!.embedding[i]!, 5));
    expect(response.output_text).toBe("echo: resp");
  });

  it("passes every other request through to the real fetch unchanged", async () => {
    const { openai, passedThrough, batchingFetch } = setup();
    const list = await openai.files.list();
    expect(Array.isArray(list.data)).toBe(true);
    await expect(openai.models.list()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(passedThrough.map((s) => `${s.method} ${new URL(s.url).pathname}`)).toEqual([
      "GET /v1/files",
      "GET /v1/models",
    ]);
    expect(batchingFetch.stats.batchesCreated).toBe(0);
  });

  it("raises OpenAI.APIUserAbortError when the caller aborts, in the buffer or while the batch runs", async () => {
    const { openai, batchingFetch } = setup();
    const early = new AbortController();
    const p1 = openai.chat.completions.create({ model: "gpt-test", messages: user("early") }, { signal: early.signal });
    early.abort();
    await expect(p1).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);

    const late = new AbortController();
    const running = submitted(batchingFetch);
    const p2 = openai.chat.completions.create(
      { model: "gpt-test", messages: user("[[latency:60000]] late") },
      { signal: late.signal },
    );
    await running;
    late.abort();
    await expect(p2).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
  });

  it("raises OpenAI.APIConnectionTimeoutError when the SDK's own timeout fires", async () => {
    const { openai } = setup({}, { timeout: 200 });
    await expect(
      openai.chat.completions.create({ model: "gpt-test", messages: user("[[latency:60000]] slow") }),
    ).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  it("answers a batch-level failure with 400 and x-should-retry: false, so the SDK does not resubmit", async () => {
    // Without line retries: with them, a batch_expired line goes into a later batch (test/core/line-retries.test.ts).
    const { openai, batchingFetch } = setup({ lineRetries: 0 }, { maxRetries: 2 });
    const batches = emu.counters.batchesCreated;
    const running = submitted(batchingFetch);
    const call = openai.chat.completions.create({ model: "gpt-test", messages: user("[[latency:60000]] never") });
    emu.expireNow(await running);
    const err = await call.then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err!.code).toBe("batch_expired");
    expect(err!.type).toBe("batch_error");
    expect(err!.headers?.get("x-should-retry")).toBe("false");
    expect(err!.headers?.get("x-autobatch-error")).toBe("BatchFailedError");
    expect(emu.counters.batchesCreated - batches).toBe(1);
  });

  it("raises OpenAI.APIConnectionError when the Batch API cannot be reached", async () => {
    const batchingFetch = createBatchingFetch({
      apiKey: "test-key",
      baseURL: "http://127.0.0.1:9/v1",
      batchWindowMs: 10,
      maxRetries: 0,
    });
    open.push(batchingFetch);
    const openai = new OpenAI({
      apiKey: "test-key",
      baseURL: "http://127.0.0.1:9/v1",
      fetch: batchingFetch,
      maxRetries: 0,
    });
    const err = await openai.chat.completions.create({ model: "gpt-test", messages: user("x") }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect((err as Error).cause).toBeInstanceOf(TypeError);
  });

  it("rejects stream: true with a 400 that says why (default)", async () => {
    const { openai, passedThrough } = setup();
    const err = await openai.chat.completions.create({ model: "gpt-test", messages: user("s"), stream: true }).then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err!.message).toMatch(/^400 stream: true is not supported/);
    expect(err!.param).toBe("stream");
    expect(passedThrough).toEqual([]);
  });

  it('sends stream: true unbatched to the real fetch with streaming: "passthrough"', async () => {
    const spy = spyFetch(() => new Response("data: [DONE]\n\n", { headers: { "content-type": "text/event-stream" } }));
    const batchingFetch = createBatchingFetch({
      apiKey: "test-key",
      baseURL: emu.url,
      streaming: "passthrough",
      fetch: spy.fetch,
    });
    open.push(batchingFetch);
    const openai = new OpenAI({ apiKey: "test-key", baseURL: emu.url, fetch: batchingFetch, maxRetries: 0 });
    const stream = await openai.chat.completions.create({ model: "gpt-test", messages: user("s"), stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks).toEqual([]);
    expect(spy.seen).toHaveLength(1);
    expect(JSON.parse(spy.seen[0]!.body!)).toMatchObject({ stream: true, model: "gpt-test" });
    expect(batchingFetch.stats.batchesCreated).toBe(0);
  });

  it("after close(), batched calls fail fast (400, not retried) and pass-through keeps working", async () => {
    const { openai, batchingFetch, passedThrough } = setup({}, { maxRetries: 2 });
    await batchingFetch.close();
    const err = await openai.chat.completions.create({ model: "gpt-test", messages: user("late") }).then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err!.headers?.get("x-autobatch-error")).toBe("ClientClosedError");
    await openai.files.list();
    expect(passedThrough).toHaveLength(1);
  });
});

describe("createBatchingFetch request matching", () => {
  const body = JSON.stringify({ model: "gpt-test", messages: user("m") });

  it("accepts a string, a URL or a Request, Headers or a plain object, any method case", async () => {
    const { batchingFetch, passedThrough } = setup();
    const url = `${emu.url}/chat/completions`;
    const answers = await Promise.all([
      batchingFetch(url, { method: "POST", headers: { "content-type": "application/json" }, body }),
      batchingFetch(new URL(url), {
        method: "post",
        headers: new Headers({ "content-type": "application/json" }),
        body,
      }),
      batchingFetch(new Request(url, { method: "POST", body })),
      batchingFetch(url, { method: "POST", body: new TextEncoder().encode(body) }),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(200);
      expect(res.headers.get("x-autobatch-custom-id")).toMatch(/^ab-/);
      expect(((await res.json()) as { object: string }).object).toBe("chat.completion");
    }
    expect(passedThrough).toEqual([]);
  });

  it("passes through other methods, paths and origins", async () => {
    const spy = spyFetch(() => new Response("{}"));
    const batchingFetch = createBatchingFetch({ apiKey: "test-key", baseURL: emu.url, fetch: spy.fetch });
    open.push(batchingFetch);
    const other = emu.url.replace("127.0.0.1", "localhost");
    await batchingFetch(`${emu.url}/chat/completions`, { method: "GET" });
    await batchingFetch(`${emu.url}/completions`, { method: "POST", body });
    await batchingFetch(`${emu.url}/chat/completions/extra`, { method: "POST", body });
    await batchingFetch(`${other}/chat/completions`, { method: "POST", body });
    await batchingFetch(new Request(`${emu.url}/files`, { method: "POST", body: "x" }));
    expect(spy.seen).toHaveLength(5);
    expect(batchingFetch.stats.pending).toBe(0);
  });

  it("keeps a Request's body readable when it passes a stream: true request through", async () => {
    const received: string[] = [];
    const batchingFetch = createBatchingFetch({
      apiKey: "test-key",
      baseURL: emu.url,
      streaming: "passthrough",
      fetch: async (input, init) => {
        received.push(typeof init?.body === "string" ? init.body : await (input as Request).text());
        return new Response("ok");
      },
    });
    open.push(batchingFetch);
    const streamBody = JSON.stringify({ model: "gpt-test", messages: user("s"), stream: true });
    await batchingFetch(new Request(`${emu.url}/chat/completions`, { method: "POST", body: streamBody }));
    expect(received).toEqual([streamBody]);
  });

  it("answers a body that is not JSON with a 400 invalid_request_error", async () => {
    const { batchingFetch } = setup();
    const res = await batchingFetch(`${emu.url}/embeddings`, { method: "POST", body: "{not json" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
  });

  it("rejects with the signal's AbortError when aborted, like the real fetch", async () => {
    const { batchingFetch } = setup();
    const ac = new AbortController();
    const p = batchingFetch(`${emu.url}/chat/completions`, { method: "POST", body, signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    expect(await p.catch((e: unknown) => e)).toBeInstanceOf(DOMException);
  });

  it("validates its own options at construction", () => {
    expect(() => createBatchingFetch({ apiKey: "k", streaming: "sometimes" as "reject" })).toThrow(TypeError);
    expect(() => createBatchingFetch({ apiKey: "k", batchSize: 0 })).toThrow(/batchSize/);
  });
});

describe("request matching", () => {
  it("batches a Request from another fetch implementation and a URL with a trailing slash", async () => {
    const undici = await import("undici");
    const { batchingFetch, passedThrough } = setup({ batchSize: 2 });
    const body = (content: string) => JSON.stringify({ model: "gpt-test", messages: user(content) });
    const [viaRequest, viaSlash] = await Promise.all([
      batchingFetch(
        new undici.Request(`${emu.url}/chat/completions`, {
          method: "POST",
          body: body("req"),
          headers: { "content-type": "application/json" },
        }) as unknown as Request,
      ),
      batchingFetch(`${emu.url}/chat/completions/`, { method: "POST", body: body("slash") }),
    ]);
    expect(
      ((await viaRequest.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    ).toBe("echo: req");
    expect(
      ((await viaSlash.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    ).toBe("echo: slash");
    expect(passedThrough).toEqual([]);
  });
});

describe("a line whose request could not reach the model", () => {
  it("comes back as a 502 the SDK treats as a gateway error", async () => {
    const unreachable = await startEmulator({ port: 0, upstream: { baseURL: "http://127.0.0.1:1/v1" } });
    const batchingFetch = createBatchingFetch({
      apiKey: "k",
      baseURL: unreachable.url,
      batchWindowMs: 10,
      pollIntervalMs: 10,
    });
    try {
      const openai = new OpenAI({ apiKey: "k", baseURL: unreachable.url, fetch: batchingFetch, maxRetries: 0 });
      const err = await openai.chat.completions.create({ model: "m", messages: user("x") }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect((err as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(502);
      expect((err as InstanceType<typeof OpenAI.InternalServerError>).code).toBe("upstream_connection_error");
    } finally {
      await batchingFetch.close({ cancel: true });
      await unreachable.close();
    }
  });
});
