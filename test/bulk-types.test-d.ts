import { expectTypeOf, test } from "vitest";
import { AutoBatcher } from "../src/index.js";
import type { ChatCompletion, CreateEmbeddingResponse, Response } from "../src/client.js";

// A result's type follows its request's endpoint, also for an array built by map() with no annotation.
test("bulk() result types", async () => {
  const client = new AutoBatcher();
  const prompts = ["a"];
  const model = "m";
  for await (const r of client.bulk(
    prompts.map((content, i) => ({ id: `q${i}`, params: { model, messages: [{ role: "user", content }] } })),
  )) {
    if (r.ok) expectTypeOf(r.result).toEqualTypeOf<ChatCompletion>();
  }
  for await (const r of client.bulk([{ id: "e", endpoint: "/v1/embeddings", params: { model, input: "x" } }])) {
    if (r.ok) expectTypeOf(r.result).toEqualTypeOf<CreateEmbeddingResponse>();
  }
  const mixed = [
    { id: "c", params: { model, messages: [{ role: "user" as const, content: "x" }] } },
    { id: "r", endpoint: "/v1/responses" as const, params: { model, input: "x" } },
  ];
  for await (const r of client.bulk(mixed)) {
    if (r.ok) expectTypeOf(r.result).toEqualTypeOf<ChatCompletion | Response>();
    else expectTypeOf(r.error.message).toBeString();
  }
});
