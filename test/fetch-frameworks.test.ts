// createBatchingFetch behind the Vercel AI SDK (ai@6, @ai-sdk/openai@3) and LangChain.js (@langchain/openai 1.5),
// against the emulator: batching, each framework's own errors, no resubmission of batch-level failures, abort.
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import { APICallError, embedMany, generateText, streamText } from "ai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { createBatchingFetch, type BatchingFetch, type FetchLike } from "../src/fetch.js";

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
});
afterAll(() => emu.close());

const open: BatchingFetch[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close({ cancel: true })));
});

function batching(extra: { batchSize?: number; batchWindowMs?: number; lineRetries?: number } = {}) {
  const passedThrough: string[] = [];
  const fetch: FetchLike = (input, init) => {
    passedThrough.push(input instanceof Request ? input.url : String(input));
    return globalThis.fetch(input, init);
  };
  const f = createBatchingFetch({
    apiKey: "test-key",
    baseURL: emu.url,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    fetch,
    ...extra,
  });
  open.push(f);
  return { batchingFetch: f, passedThrough };
}

const submitted = (f: BatchingFetch) =>
  new Promise<string>((resolve) => f.on("batchSubmitted", (e) => resolve(e.batchId)));

/** Runs `fn` and reports how many batches and files the emulator created meanwhile. */
async function counting<T>(fn: () => Promise<T>) {
  const batches = emu.counters.batchesCreated;
  const files = emu.counters.filesUploaded;
  const result = await fn();
  return { result, batches: emu.counters.batchesCreated - batches, files: emu.counters.filesUploaded - files };
}

describe("Vercel AI SDK", () => {
  const provider = (f: BatchingFetch) => createOpenAI({ apiKey: "test-key", baseURL: emu.url, fetch: f });

  it("puts concurrent generateText calls (chat and responses) and embedMany into one file per endpoint", async () => {
    const { batchingFetch, passedThrough } = batching({ batchSize: 10, batchWindowMs: 200 });
    const openai = provider(batchingFetch);
    const { result, batches, files } = await counting(() =>
      Promise.all([
        Promise.all(
          Array.from({ length: 10 }, (_, i) => generateText({ model: openai.chat("gpt-test"), prompt: `c${i}` })),
        ),
        Promise.all(Array.from({ length: 10 }, (_, i) => generateText({ model: openai("gpt-test"), prompt: `r${i}` }))),
        embedMany({ model: openai.embedding("emb-test"), values: ["a", "b", "c"] }),
      ]),
    );
    const [chats, responses, embeddings] = result;
    expect(chats.map((r) => r.text)).toEqual(Array.from({ length: 10 }, (_, i) => `echo: c${i}`));
    expect(responses.map((r) => r.text)).toEqual(Array.from({ length: 10 }, (_, i) => `echo: r${i}`));
    expect(embeddings.embeddings).toHaveLength(3);
    expect(batches).toBe(3);
    expect(files).toBe(3);
    expect(passedThrough).toEqual([]);
  });

  it("raises APICallError with the upstream status and message for a failing line", async () => {
    const { batchingFetch } = batching();
    const err = await generateText({
      model: provider(batchingFetch).chat("gpt-test"),
      prompt: "[[status:400]] bad",
      maxRetries: 0,
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ statusCode: 400, message: "Emulated failure (HTTP 400)", isRetryable: false });
  });

  it("does not resubmit a batch-level failure, although it retries 5xx", async () => {
    // Without line retries: with them, a batch_expired line goes into a later batch (test/core/line-retries.test.ts).
    const { batchingFetch } = batching({ lineRetries: 0 });
    const running = submitted(batchingFetch);
    const { result: err, batches } = await counting(async () => {
      const call = generateText({
        model: provider(batchingFetch).chat("gpt-test"),
        prompt: "[[latency:60000]] never",
        maxRetries: 2,
      }).catch((e: unknown) => e);
      emu.expireNow(await running);
      return call;
    });
    expect(APICallError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ statusCode: 400, isRetryable: false });
    expect((err as APICallError).responseBody).toContain("batch_expired");
    expect(batches).toBe(1);
  });

  it("honours abortSignal", async () => {
    const { batchingFetch } = batching();
    const ac = new AbortController();
    const running = submitted(batchingFetch);
    const call = generateText({
      model: provider(batchingFetch).chat("gpt-test"),
      prompt: "[[latency:60000]] wait",
      abortSignal: ac.signal,
    }).catch((e: unknown) => e);
    await running;
    ac.abort();
    expect(await call).toMatchObject({ name: "AbortError" });
  });

  it("rejects streamText with the reason (default), since a Batch API cannot stream", async () => {
    const { batchingFetch } = batching();
    const errors: unknown[] = [];
    const result = streamText({
      model: provider(batchingFetch).chat("gpt-test"),
      prompt: "s",
      maxRetries: 0,
      onError: ({ error }) => void errors.push(error),
    });
    await result.consumeStream();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ statusCode: 400, isRetryable: false });
    expect((errors[0] as Error).message).toMatch(/stream: true is not supported/);
  });
});

describe("LangChain.js", () => {
  const chat = (f: BatchingFetch, fields: { maxRetries?: number } = {}) =>
    new ChatOpenAI({
      model: "gpt-test",
      apiKey: "test-key",
      timeout: 60_000,
      configuration: { baseURL: emu.url, fetch: f },
      ...fields,
    });

  it("sends .batch() through one Batch API file", async () => {
    const { batchingFetch, passedThrough } = batching({ batchSize: 12, batchWindowMs: 60_000 });
    const { result, files } = await counting(() =>
      chat(batchingFetch).batch(Array.from({ length: 12 }, (_, i) => `q${i}`)),
    );
    expect(result.map((m) => m.text)).toEqual(Array.from({ length: 12 }, (_, i) => `echo: q${i}`));
    expect(files).toBe(1);
    expect(passedThrough).toEqual([]);
  });

  it("raises the openai-node error LangChain wraps, with the upstream status and message", async () => {
    const { batchingFetch } = batching();
    const err = await chat(batchingFetch, { maxRetries: 0 })
      .invoke("[[status:400]] bad")
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400 });
    expect((err as Error).message).toContain("Emulated failure (HTTP 400)");
  });

  it("does not resubmit a batch-level failure (its AsyncCaller retries 6 times by default)", async () => {
    // Without line retries: with them, a batch_expired line goes into a later batch (test/core/line-retries.test.ts).
    const { batchingFetch } = batching({ lineRetries: 0 });
    const running = submitted(batchingFetch);
    const { result: err, batches } = await counting(async () => {
      const call = chat(batchingFetch)
        .invoke("[[latency:60000]] never")
        .catch((e: unknown) => e);
      emu.expireNow(await running);
      return call;
    });
    expect(err).toMatchObject({ status: 400, code: "batch_expired" });
    expect(batches).toBe(1);
  });

  it("honours the signal in the call config", async () => {
    const { batchingFetch } = batching();
    const ac = new AbortController();
    const running = submitted(batchingFetch);
    const call = chat(batchingFetch)
      .invoke("[[latency:60000]] wait", { signal: ac.signal })
      .catch((e: unknown) => e);
    await running;
    ac.abort();
    // openai-node's APIUserAbortError, as LangChain wraps it.
    expect(await call).toMatchObject({ name: "AbortError", message: "Request was aborted." });
    expect(batchingFetch.stats.pending).toBe(0);
  });
});
