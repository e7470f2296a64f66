// The frameworks' everyday calls through createBatchingFetch, each asserting its answer: the AI SDK (generateText,
// streamText, generateObject, streamObject, embedMany, tools) and LangChain.js (invoke, stream, batch, bindTools,
// withStructuredOutput). The emulator runs each line on a small structured-output model (test/helpers). On Node 20
// this is ai 6 + @ai-sdk/openai 3 and @langchain/openai 1.5; test/compat's config runs it on ai 7 + @ai-sdk/openai 4
// and @langchain/openai 1.6.
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { embedMany, generateObject, generateText, jsonSchema, streamObject, streamText, tool } from "ai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { createBatchingFetch, type BatchingFetch } from "../src/fetch.js";
import { startStructuredModel } from "./helpers/structured-model.js";

let model: Awaited<ReturnType<typeof startStructuredModel>>;
let emu: Emulator;
beforeAll(async () => {
  model = await startStructuredModel();
  emu = await startEmulator({ flavor: "openai", upstream: { baseURL: model.url } });
});
afterAll(async () => {
  await emu.close();
  await model.close();
});

let batchingFetch: BatchingFetch;
let passedThrough: string[];
afterEach(async () => {
  expect(passedThrough).toEqual([]);
  await batchingFetch.close({ cancel: true });
});
function fresh() {
  passedThrough = [];
  batchingFetch = createBatchingFetch({
    apiKey: "test-key",
    baseURL: emu.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    fetch: (input, init) => {
      passedThrough.push(String(input));
      return globalThis.fetch(input, init);
    },
  });
  return batchingFetch;
}

const answerSchema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] } as const;
const weatherSchema = { type: "object", properties: { city: { type: "string" } }, required: ["city"] } as const;

describe("Vercel AI SDK through the batching fetch", () => {
  const chat = () => createOpenAI({ apiKey: "test-key", baseURL: emu.baseURL, fetch: fresh() });

  it("generateText", async () => {
    const { text } = await generateText({ model: chat().chat("gpt-test"), prompt: "hi" });
    expect(text).toBe("echo: hi");
  });

  it("streamText", async () => {
    expect(await streamText({ model: chat().chat("gpt-test"), prompt: "s" }).text).toBe("echo: s");
  });

  it("generateObject", async () => {
    const { object } = await generateObject({
      model: chat().chat("gpt-test"),
      schema: jsonSchema<{ answer: string }>(answerSchema),
      prompt: '{"answer":"forty-two"}',
    });
    expect(object).toEqual({ answer: "forty-two" });
  });

  it("streamObject", async () => {
    const result = streamObject({
      model: chat().chat("gpt-test"),
      schema: jsonSchema<{ answer: string }>(answerSchema),
      prompt: '{"answer":"streamed"}',
    });
    const partials: unknown[] = [];
    for await (const partial of result.partialObjectStream) partials.push(partial);
    expect(partials.at(-1)).toEqual({ answer: "streamed" });
    expect(await result.object).toEqual({ answer: "streamed" });
  });

  it("embedMany, in one batch", async () => {
    const before = emu.counters.batchesCreated;
    const { embeddings } = await embedMany({
      model: chat().embedding("emb-test"),
      values: ["a", "b", "c"],
    });
    expect(embeddings).toEqual([
      [0, 1, 0],
      [1, 1, 0],
      [2, 1, 0],
    ]);
    expect(emu.counters.batchesCreated - before).toBe(1);
  });

  it("tools: the model's call runs the tool with its arguments", async () => {
    const { toolResults } = await generateText({
      model: chat().chat("gpt-test"),
      tools: {
        weather: tool({
          description: "Weather in a city",
          inputSchema: jsonSchema<{ city: string }>(weatherSchema),
          execute: async ({ city }) => `sunny in ${city}`,
        }),
      },
      prompt: '{"city":"Paris"}',
    });
    expect(toolResults.map((r) => [r.toolName, r.output])).toEqual([["weather", "sunny in Paris"]]);
  });
});

describe("LangChain.js through the batching fetch", () => {
  const chat = () =>
    new ChatOpenAI({
      model: "gpt-test",
      apiKey: "test-key",
      timeout: 60_000,
      configuration: { baseURL: emu.baseURL, fetch: fresh() },
    });

  it("invoke", async () => {
    expect((await chat().invoke("hi")).text).toBe("echo: hi");
  });

  it("stream", async () => {
    let text = "";
    for await (const chunk of await chat().stream("s")) text += chunk.text;
    expect(text).toBe("echo: s");
  });

  it("batch, in one Batch API file", async () => {
    const before = emu.counters.batchesCreated;
    const answers = await chat().batch(["a", "b", "c"]);
    expect(answers.map((m) => m.text)).toEqual(["echo: a", "echo: b", "echo: c"]);
    expect(emu.counters.batchesCreated - before).toBe(1);
  });

  it("bindTools", async () => {
    const message = await chat()
      .bindTools([{ type: "function", function: { name: "weather", parameters: weatherSchema } }])
      .invoke('{"city":"Paris"}');
    expect(message.tool_calls?.map((c) => [c.name, c.args])).toEqual([["weather", { city: "Paris" }]]);
  });

  it("withStructuredOutput", async () => {
    const structured = chat().withStructuredOutput<{ answer: string }>({ title: "Answer", ...answerSchema });
    expect(await structured.invoke('{"answer":"forty-two"}')).toEqual({ answer: "forty-two" });
  });

  it("OpenAIEmbeddings (openai-node's base64 default)", async () => {
    const embeddings = new OpenAIEmbeddings({
      model: "emb-test",
      apiKey: "test-key",
      configuration: { baseURL: emu.baseURL, fetch: fresh() },
    });
    expect(await embeddings.embedDocuments(["a", "b"])).toEqual([
      [0, 1, 0],
      [1, 1, 0],
    ]);
  });
});
