// AutoBatcher: the drop-in client. `client.chat.completions.create(params)` and friends look like openai-node's (same
// param and result types, an APIPromise with withResponse()/asResponse()), but every call waits in a buffer and is
// answered from a Batch API result line. The types come from `openai`, a dev dependency only: apps that want them
// install `openai` themselves (see the README).
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import type { CreateEmbeddingResponse, EmbeddingCreateParams } from "openai/resources/embeddings";
import type { Response, ResponseCreateParamsNonStreaming } from "openai/resources/responses/responses";
import { APIPromise } from "./api-promise.js";
import { Engine, type CallOptions, type CloseOptions, type EngineStats } from "./core/engine.js";
import type { Endpoint } from "./internal/endpoints.js";
import type { EventMap, EventName } from "./events.js";
import type { AutoBatcherOptions } from "./options.js";

export type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
  CreateEmbeddingResponse,
  EmbeddingCreateParams,
  Response,
  ResponseCreateParamsNonStreaming,
};

export class AutoBatcher {
  readonly #engine: Engine;

  readonly chat: {
    readonly completions: {
      create(params: ChatCompletionCreateParamsNonStreaming, options?: CallOptions): APIPromise<ChatCompletion>;
    };
  };
  readonly embeddings: {
    create(params: EmbeddingCreateParams, options?: CallOptions): APIPromise<CreateEmbeddingResponse>;
  };
  readonly responses: {
    create(params: ResponseCreateParamsNonStreaming, options?: CallOptions): APIPromise<Response>;
  };

  constructor(options?: AutoBatcherOptions) {
    this.#engine = new Engine(options);
    const facade =
      <P, R>(endpoint: Endpoint) =>
      (params: P, options?: CallOptions) =>
        this.#engine.submit(endpoint, params, {
          signal: options?.signal,
          idempotencyKey: options?.idempotencyKey,
          promiseClass: APIPromise as PromiseConstructor,
        }) as APIPromise<R>;
    this.chat = {
      completions: { create: facade<ChatCompletionCreateParamsNonStreaming, ChatCompletion>("/v1/chat/completions") },
    };
    this.embeddings = { create: facade<EmbeddingCreateParams, CreateEmbeddingResponse>("/v1/embeddings") };
    this.responses = { create: facade<ResponseCreateParamsNonStreaming, Response>("/v1/responses") };
  }

  /** Subscribes to a lifecycle event; returns a function that unsubscribes. */
  on<K extends EventName>(name: K, listener: (payload: EventMap[K]) => void): () => void {
    return this.#engine.events.on(name, listener);
  }

  /** Calls buffered, submitting, batches running, calls pending, batches created, bytes read. */
  get stats(): EngineStats {
    return this.#engine.stats;
  }

  /** Resolves when no call is waiting. */
  onIdle(): Promise<void> {
    return this.#engine.onIdle();
  }

  /** Flushes what is buffered and waits for every call to settle. `{ cancel: true }`: cancel upstream and reject instead. */
  close(options?: CloseOptions): Promise<void> {
    return this.#engine.close(options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
