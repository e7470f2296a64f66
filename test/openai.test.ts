// BatchOpenAI: a real openai-node `OpenAI` whose batchable calls go through Batch API files and whose other calls go
// to the provider in real time, against the emulator (OpenAI flavour).
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { InvalidOptionsError } from "../src/options.js";
import { BatchOpenAI, type BatchOpenAIOptions } from "../src/openai.js";

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
});
afterAll(() => emu.close());

const open: BatchOpenAI[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close({ cancel: true })));
});

function client(options: BatchOpenAIOptions = {}) {
  const seen: string[] = [];
  const c = new BatchOpenAI({
    apiKey: "test-key",
    baseURL: emu.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    maxRetries: 0,
    fetch: (input, init) => {
      seen.push(`${init?.method ?? "GET"} ${new URL(String(input)).pathname}`);
      return globalThis.fetch(input, init);
    },
    ...options,
  });
  open.push(c);
  return { client: c, realTime: seen };
}

const user = (content: string) => [{ role: "user" as const, content }];
/** What a function typed against openai accepts: the point of a subclass. */
const firstAnswer = async (c: OpenAI, prompt: string) =>
  (await c.chat.completions.create({ model: "gpt-test", messages: user(prompt) })).choices[0]!.message.content;

describe("BatchOpenAI", () => {
  it("is an OpenAI, and batches 20 concurrent chat calls into one file", async () => {
    const { client: c, realTime } = client({ batchSize: 20, batchWindowMs: 60_000 });
    expect(c).toBeInstanceOf(OpenAI);
    const before = emu.counters.batchesCreated;
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => firstAnswer(c, `q${i}`)));
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `echo: q${i}`));
    expect(emu.counters.batchesCreated - before).toBe(1);
    expect(realTime).toEqual([]);
  });

  it("batches embeddings and responses (with openai's own result shaping), and streams from the batch", async () => {
    const { client: c } = client({ batchWindowMs: 50 });
    const [embedding, response, stream] = await Promise.all([
      c.embeddings.create({ model: "emb-test", input: "x" }),
      c.responses.create({ model: "gpt-test", input: "r" }),
      c.chat.completions.create({ model: "gpt-test", messages: user("s"), stream: true }),
    ]);
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? "";
    // openai-node asked for base64 and decoded it: the numbers come back as numbers.
    expect(typeof embedding.data[0]!.embedding[0]).toBe("number");
    expect(response.output_text).toBe("echo: r");
    expect(streamed).toBe("echo: s");
    expect(c.stats.batchesCreated).toBe(3);
  });

  it("sends everything else to the provider in real time, through the given fetch", async () => {
    const { client: c, realTime } = client();
    const ids: string[] = [];
    for await (const model of c.models.list()) ids.push(model.id);
    expect(ids).toEqual(["autobatch-emulator"]);
    expect(realTime).toEqual(["GET /v1/models"]);
  });

  it("gives batched calls the batch's deadline as timeout; real-time calls and per-call timeouts keep theirs", async () => {
    const { client: c } = client({ timeout: 30_000, completionWindow: "1h", deadlineGraceMs: 60_000 });
    const prepare = async (method: "get" | "post", path: string, timeout?: number) => {
      const options = { method, path, ...(timeout !== undefined && { timeout }) };
      await (c as unknown as { prepareOptions(o: object): Promise<void> }).prepareOptions(options);
      return (options as { timeout?: number }).timeout;
    };
    expect(await prepare("post", "/chat/completions")).toBe(3_600_000 + 60_000);
    expect(await prepare("post", "/responses")).toBe(3_660_000);
    expect(await prepare("post", "/chat/completions", 5_000)).toBe(5_000);
    // Left to openai: the client's own 30 s.
    expect(await prepare("get", "/models")).toBeUndefined();
    expect(await prepare("post", "/files")).toBeUndefined();
  });

  it("honours a per-call signal: the call is released, the others in its batch go on", async () => {
    const { client: c } = client({ batchWindowMs: 60_000, batchSize: 2 });
    const ac = new AbortController();
    const aborted = c.chat.completions.create(
      { model: "gpt-test", messages: user("[[latency:60000]] a") },
      { signal: ac.signal },
    );
    const kept = firstAnswer(c, "b");
    ac.abort();
    await expect(aborted).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await c.close();
    expect(await kept).toBe("echo: b");
  });

  it("withOptions() shares the batcher: calls from both clients fill one batch, and close() is shared", async () => {
    const { client: c, realTime } = client({ batchSize: 2, batchWindowMs: 60_000 });
    const clone = c.withOptions({ maxRetries: 1 });
    expect(clone).toBeInstanceOf(BatchOpenAI);
    expect(clone.maxRetries).toBe(1);
    const before = emu.counters.batchesCreated;
    expect(await Promise.all([firstAnswer(c, "a"), firstAnswer(clone, "b")])).toEqual(["echo: a", "echo: b"]);
    expect(emu.counters.batchesCreated - before).toBe(1);
    expect(realTime).toEqual([]);
  });

  it("close() flushes what is buffered and settles it; asyncDispose does the same", async () => {
    const { client: c } = client({ batchWindowMs: 60_000 });
    const call = firstAnswer(c, "late");
    await c.close();
    expect(await call).toBe("echo: late");
    const { client: d } = client({ batchWindowMs: 60_000 });
    let disposedCall: Promise<string | null>;
    {
      await using scoped = d;
      disposedCall = firstAnswer(scoped, "scoped");
    }
    expect(await disposedCall).toBe("echo: scoped");
  });

  it("maps batchMaxRetries to the batcher and rejects an apiKey function with a clear error", () => {
    expect(() => client({ batchMaxRetries: -1 })).toThrow(/maxRetries: maxRetries must be >= 0/);
    expect(() => client({ batchSize: 0 })).toThrow(InvalidOptionsError);
    expect(() => client({ apiKey: async () => "k" })).toThrow(/apiKey: must be a string/);
  });
});
