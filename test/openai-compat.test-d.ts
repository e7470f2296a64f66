// Type compatibility with openai@6.49 (test/compat runs it against openai@7 too): code written against openai-node's non-streaming types compiles unchanged
// against AutoBatcher, and the batching fetch fits every client that takes a `fetch`.
import type { createOpenAI } from "@ai-sdk/openai";
import type { ChatOpenAIFields } from "@langchain/openai";
import type OpenAI from "openai";
import type { APIError as OpenAIAPIError, ClientOptions } from "openai";
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import type { CreateEmbeddingResponse, EmbeddingCreateParams } from "openai/resources/embeddings";
import type {
  Response as OpenAIResponse,
  ResponseCreateParamsNonStreaming,
  ResponseCreateParamsStreaming,
} from "openai/resources/responses/responses";
import { describe, expectTypeOf, it } from "vitest";
import {
  type APIError,
  type APIPromise,
  type AutoBatcher,
  type BadRequestError,
  createBatchingFetch,
  type OpenAIError,
  type BatchingFetch,
} from "../src/index.js";
import { BatchOpenAI, type BatchOpenAIOptions } from "../src/openai.js";

declare const client: AutoBatcher;

describe("AutoBatcher against openai@6 types", () => {
  it("takes openai's non-streaming params and returns openai's results", () => {
    expectTypeOf(client.chat.completions.create).parameter(0).toEqualTypeOf<ChatCompletionCreateParamsNonStreaming>();
    expectTypeOf(client.embeddings.create).parameter(0).toEqualTypeOf<EmbeddingCreateParams>();
    expectTypeOf(client.responses.create).parameter(0).toEqualTypeOf<ResponseCreateParamsNonStreaming>();

    expectTypeOf(client.chat.completions.create).returns.toEqualTypeOf<APIPromise<ChatCompletion>>();
    expectTypeOf(client.chat.completions.create).returns.resolves.toExtend<ChatCompletion>();
    expectTypeOf(client.embeddings.create).returns.resolves.toExtend<CreateEmbeddingResponse>();
    expectTypeOf(client.responses.create).returns.resolves.toExtend<OpenAIResponse>();
    // And back: an openai result is what AutoBatcher resolves with (apart from the optional _request_id).
    expectTypeOf<ChatCompletion>().toExtend<Awaited<ReturnType<AutoBatcher["chat"]["completions"]["create"]>>>();
    expectTypeOf<OpenAIResponse>().toExtend<Awaited<ReturnType<AutoBatcher["responses"]["create"]>>>();
  });

  it("fits where a function expects an openai-node client", () => {
    type ChatClient = {
      chat: { completions: { create(p: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion> } };
    };
    type EmbeddingsClient = { embeddings: { create(p: EmbeddingCreateParams): Promise<CreateEmbeddingResponse> } };
    type ResponsesClient = { responses: { create(p: ResponseCreateParamsNonStreaming): Promise<OpenAIResponse> } };
    expectTypeOf(client).toExtend<ChatClient & EmbeddingsClient & ResponsesClient>();
    // Call sites written for openai-node compile as they are.
    const ask = (c: ChatClient, params: ChatCompletionCreateParamsNonStreaming) => c.chat.completions.create(params);
    expectTypeOf(
      ask(client, { model: "m", messages: [{ role: "user", content: "hi" }] }),
    ).resolves.toEqualTypeOf<ChatCompletion>();
  });

  it("has openai-node's APIPromise surface", () => {
    const p = client.chat.completions.create({ model: "m", messages: [] });
    expectTypeOf(p).toExtend<Promise<ChatCompletion>>();
    expectTypeOf(p.withResponse).returns.resolves.toEqualTypeOf<{
      data: ChatCompletion & { _request_id?: string | null };
      response: Response;
      request_id: string | null;
    }>();
    expectTypeOf(p.asResponse).returns.resolves.toEqualTypeOf<Response>();
    expectTypeOf<Awaited<typeof p>["_request_id"]>().toEqualTypeOf<string | null | undefined>();
    // What openai's own withResponse() gives is what ours gives.
    type Theirs = Awaited<ReturnType<ReturnType<OpenAI["chat"]["completions"]["create"]>["withResponse"]>>;
    expectTypeOf<Awaited<ReturnType<typeof p.withResponse>>["request_id"]>().toEqualTypeOf<Theirs["request_id"]>();
  });

  it("makes stream: true a type error", () => {
    const streaming: ChatCompletionCreateParamsStreaming = { model: "m", messages: [], stream: true };
    // @ts-expect-error the Batch API cannot stream
    void client.chat.completions.create(streaming);
    // @ts-expect-error the Batch API cannot stream
    void client.chat.completions.create({ model: "m", messages: [], stream: true });
    const responsesStreaming: ResponseCreateParamsStreaming = { model: "m", stream: true };
    // @ts-expect-error the Batch API cannot stream
    void client.responses.create(responsesStreaming);
    void client.chat.completions.create({ model: "m", messages: [], stream: false });
  });
});

describe("createBatchingFetch against the clients that take a fetch", () => {
  const batchingFetch = createBatchingFetch({ apiKey: "k" });
  it("is a fetch for openai-node, the AI SDK and LangChain.js", () => {
    expectTypeOf(batchingFetch).toExtend<NonNullable<ClientOptions["fetch"]>>();
    expectTypeOf(batchingFetch).toExtend<NonNullable<NonNullable<Parameters<typeof createOpenAI>[0]>["fetch"]>>();
    expectTypeOf(batchingFetch).toExtend<NonNullable<NonNullable<ChatOpenAIFields["configuration"]>["fetch"]>>();
    expectTypeOf(batchingFetch).toExtend<typeof globalThis.fetch>();
    expectTypeOf(batchingFetch).toEqualTypeOf<BatchingFetch>();
    expectTypeOf(batchingFetch.close).returns.toEqualTypeOf<Promise<void>>();
  });
});

describe("error classes", () => {
  it("mirror openai-node's fields", () => {
    type Fields = "status" | "headers" | "error" | "code" | "param" | "type" | "requestID" | "message";
    expectTypeOf<Pick<APIError, Fields>>().toExtend<Pick<OpenAIAPIError, Exclude<Fields, "error">>>();
    expectTypeOf<BadRequestError["status"]>().toEqualTypeOf<400>();
    expectTypeOf<APIError>().toExtend<OpenAIError>();
  });
});

describe("per-call options", () => {
  it("AutoBatcher's create() takes openai's RequestOptions", () => {
    const options: OpenAI.RequestOptions = { timeout: 1_000, maxRetries: 0, headers: { "x-a": "1" } };
    void client.chat.completions.create({ model: "m", messages: [] }, options);
    void client.embeddings.create({ model: "m", input: "x" }, { signal: new AbortController().signal });
    void client.responses.create({ model: "m" }, { idempotencyKey: "k", timeout: 5 });
    // @ts-expect-error a typo is still a type error
    void client.chat.completions.create({ model: "m", messages: [] }, { timeot: 1 });
  });

  it("AutoBatcher is drop-in for openai's method shapes, not for the OpenAI class itself", () => {
    type Completions = Pick<OpenAI["chat"]["completions"], "create">;
    const nonStreaming = (c: { create: (p: ChatCompletionCreateParamsNonStreaming) => Promise<ChatCompletion> }) => c;
    void nonStreaming(client.chat.completions);
    // The whole resource (streaming overloads, parse(), list(), ...) and the class need BatchOpenAI.
    expectTypeOf(client.chat.completions).not.toExtend<Completions>();
    expectTypeOf(client).not.toExtend<OpenAI>();
  });
});

describe("BatchOpenAI", () => {
  const batchClient = new BatchOpenAI({ apiKey: "k", batchWindowMs: 1_000, timeout: 60_000, batchMaxRetries: 3 });
  it("is an OpenAI wherever one is expected", () => {
    const takesClient = (c: OpenAI) => c;
    const takesCompletions = (c: OpenAI["chat"]["completions"]) => c;
    void takesClient(batchClient);
    void takesCompletions(batchClient.chat.completions);
    expectTypeOf(batchClient).toExtend<OpenAI>();
    expectTypeOf(batchClient.withOptions({ timeout: 1 })).toEqualTypeOf<BatchOpenAI>();
  });

  it("keeps openai's overloads, per-call options and result types", () => {
    expectTypeOf(
      batchClient.chat.completions.create({ model: "m", messages: [] }, { timeout: 1_000, maxRetries: 0 }),
    ).resolves.toExtend<ChatCompletion>();
    expectTypeOf(
      batchClient.embeddings.create({ model: "m", input: "x" }),
    ).resolves.toExtend<CreateEmbeddingResponse>();
    expectTypeOf(batchClient.close).returns.toEqualTypeOf<Promise<void>>();
  });

  it("takes openai's client options and AutoBatcher's", () => {
    expectTypeOf<ClientOptions>().toExtend<BatchOpenAIOptions>();
    expectTypeOf<{ batchSize: number; streaming: "reject"; onEvent: () => void }>().toExtend<BatchOpenAIOptions>();
    // @ts-expect-error not an option of either
    void new BatchOpenAI({ batchSiz: 1 });
  });
});
