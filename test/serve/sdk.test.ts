// The official openai client talking to `serve`, which batches through the emulator.
import OpenAI from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, UPSTREAM_KEY, type Harness } from "../helpers/serve-harness.js";

let h: Harness;
let client: OpenAI;

beforeAll(async () => {
  h = await startHarness();
  client = new OpenAI({ apiKey: "client-key", baseURL: h.proxy.baseURL, maxRetries: 0, timeout: 24 * 3600 * 1000 });
});
afterAll(() => h.close());

const tools = [
  { type: "function" as const, function: { name: "lookup", parameters: { type: "object", properties: {} } } },
];

describe("chat completions", () => {
  it("answers a plain call with the provider's body", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "hello" }] })
      .withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]!.message.content).toBe("echo: hello");
    expect(response.headers.get("x-autobatch-batch-id")).toMatch(/\S/);
    expect(response.headers.get("x-autobatch-custom-id")).toMatch(/^ab-/);
  });

  it("streams content, finish_reason and usage through the SDK's iterator", async () => {
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "stream me" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("");
    expect(text).toBe("echo: stream me");
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(chunks.flatMap((c) => c.choices).find((ch) => ch.finish_reason)?.finish_reason).toBe("stop");
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ total_tokens: expect.any(Number) });
  });

  it("leaves usage out of the stream unless include_usage is asked for", async () => {
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
  });

  it("streams tool calls with index, id, name and arguments", async () => {
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "find it [[tool:lookup]]" }],
      tools,
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const calls = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    expect(calls).toEqual([
      {
        index: 0,
        id: expect.stringMatching(/^call_/),
        type: "function",
        function: { name: "lookup", arguments: JSON.stringify({ prompt: "find it [[tool:lookup]]" }) },
      },
    ]);
    expect(chunks.flatMap((c) => c.choices).find((ch) => ch.finish_reason)?.finish_reason).toBe("tool_calls");
  });

  it("rebuilds, through the SDK's stream helper, the same completion as the non-stream call", async () => {
    const params = { model: "m", messages: [{ role: "user" as const, content: "same [[tool:lookup]]" }], tools };
    const plain = await client.chat.completions.create(params);
    const final = await client.chat.completions.stream(params).finalChatCompletion();
    expect(final.choices[0]!.message.tool_calls).toEqual(plain.choices[0]!.message.tool_calls);
    expect(final.choices[0]!.finish_reason).toBe(plain.choices[0]!.finish_reason);
    expect(final.id).toBe(plain.id);
  });

  it("surfaces a failed line as the SDK's error class with the line's status", async () => {
    const err = await client.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "[[status:400]]" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).status).toBe(400);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ type: "invalid_request_error" });
    const limited = await client.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "[[status:429]]" }] })
      .catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("answers a failing stream request with a JSON error before any byte of stream", async () => {
    const err = await client.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "[[status:404]]" }], stream: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("rejects invalid params with 400 and no retry", async () => {
    const err = await client.chat.completions.create({ model: "m", messages: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("messages");
    expect(e.headers.get("x-should-retry")).toBe("false");
  });
});

describe("embeddings", () => {
  it("returns float vectors (the SDK asks base64 and decodes it)", async () => {
    const res = await client.embeddings.create({ model: "e", input: ["a", "b"] });
    expect(res.data).toHaveLength(2);
    expect(res.data[0]!.embedding).toHaveLength(8);
    expect(res.data[0]!.embedding.every((x) => typeof x === "number" && Number.isFinite(x))).toBe(true);
    const floats = await client.embeddings.create({ model: "e", input: "a", encoding_format: "float" });
    expect(floats.data[0]!.embedding).toEqual(res.data[0]!.embedding);
  });
});

describe("responses", () => {
  it("answers a plain call; the SDK adds output_text", async () => {
    const res = await client.responses.create({ model: "m", input: "hi there" });
    expect(res.object).toBe("response");
    expect(res.output_text).toBe("echo: hi there");
  });

  it("streams the Responses event sequence with correct numbering", async () => {
    const stream = await client.responses.create({ model: "m", input: "stream this", stream: true });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const delta = events.find((e) => e.type === "response.output_text.delta");
    const item = events.find((e) => e.type === "response.output_item.done");
    expect(delta).toMatchObject({ delta: "echo: stream this", output_index: 0, content_index: 0 });
    if (delta?.type !== "response.output_text.delta" || item?.type !== "response.output_item.done")
      throw new Error("missing events");
    expect(delta.item_id).toBe(item.item.id);
    const done = events.at(-1);
    expect(done?.type === "response.completed" && done.response.usage?.total_tokens).toBeGreaterThan(0);
  });

  it("streams a function call item, and the SDK's ResponseStream rebuilds the response", async () => {
    const params = {
      model: "m",
      input: "call [[tool:lookup]]",
      tools: [{ type: "function" as const, name: "lookup", parameters: {}, strict: false }],
    };
    const stream = await client.responses.create({ ...params, stream: true });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const args = events.find((e) => e.type === "response.function_call_arguments.done");
    expect(args).toMatchObject({
      output_index: 0,
      name: "lookup",
      arguments: JSON.stringify({ prompt: "call [[tool:lookup]]" }),
    });
    const final = await client.responses.stream(params).finalResponse();
    expect(final.output[0]).toMatchObject({
      type: "function_call",
      name: "lookup",
      arguments: JSON.stringify({ prompt: "call [[tool:lookup]]" }),
    });
  });
});

describe("models and logs", () => {
  it("never logs the upstream key", () => {
    expect(h.logs.length).toBeGreaterThan(0);
    expect(JSON.stringify(h.logs)).not.toContain(UPSTREAM_KEY);
    expect(
      h.logs.every((l) => typeof l.ts === "string" && typeof l.level === "string" && typeof l.event === "string"),
    ).toBe(true);
    expect(h.logs.some((l) => l.event === "batch.submitted")).toBe(true);
    expect(h.logs.some((l) => l.event === "batch.done")).toBe(true);
  });
});
