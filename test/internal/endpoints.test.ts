import { describe, expect, it } from "vitest";
import { prepareBody, shapeResult } from "../../src/internal/endpoints.js";
import { InvalidParamsError } from "../../src/errors.js";

describe("prepareBody", () => {
  it("rejects stream: true with an explanation", () => {
    expect(() => prepareBody("/v1/chat/completions", { model: "m", messages: [{}], stream: true })).toThrow(
      /stream: true is not supported: a Batch API returns each result whole/,
    );
  });

  it.each([
    ["/v1/chat/completions", null, /params must be an object \(got null\)/, undefined],
    ["/v1/chat/completions", { messages: [{}] }, /model: model is required/, "model"],
    ["/v1/chat/completions", { model: 7, messages: [{}] }, /model: model is required and must be a string/, "model"],
    ["/v1/chat/completions", { model: "m" }, /messages: messages is required and must be an array/, "messages"],
    ["/v1/chat/completions", { model: "m", messages: [] }, /messages: messages must not be empty/, "messages"],
    ["/v1/chat/completions", { model: "", messages: [{}] }, /model must not be empty/, "model"],
    ["/v1/embeddings", { model: "m" }, /input: input is required/, "input"],
    ["/v1/embeddings", { model: "m", input: [] }, /input: input must not be empty/, "input"],
    [
      "/v1/embeddings",
      { model: "m", input: "x", encoding_format: "hex" },
      /encoding_format must be "float" or "base64"/,
      "encoding_format",
    ],
    ["/v1/responses", { input: "x" }, /model: model is required/, "model"],
  ] as const)("%s rejects %j", (endpoint, params, message, param) => {
    let error: unknown;
    try {
      prepareBody(endpoint, params);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidParamsError);
    expect((error as Error).message).toMatch(message);
    // serve hands `param` on as the OpenAI error's `param`.
    expect((error as InvalidParamsError).param ?? undefined).toBe(param);
  });

  it("rejects bodies that cannot be serialised, naming the reason", () => {
    const circular: Record<string, unknown> = { model: "m", messages: [{}] };
    circular.self = circular;
    expect(() => prepareBody("/v1/chat/completions", circular)).toThrow(/cannot be serialised to JSON/);
    expect(() => prepareBody("/v1/chat/completions", { model: "m", messages: [{}], n: 1n })).toThrow(
      /cannot be serialised/,
    );
  });

  it("drops stream: false and stream_options, never mutating the caller's object", () => {
    const params = { model: "m", messages: [{ role: "user", content: "hi" }], stream: false, stream_options: null };
    const { json } = prepareBody("/v1/chat/completions", params);
    expect(JSON.parse(json)).toEqual({ model: "m", messages: [{ role: "user", content: "hi" }] });
    expect(params.stream).toBe(false);
  });

  it("asks for base64 embeddings when the caller did not choose, as openai-node does", () => {
    expect(prepareBody("/v1/embeddings", { model: "m", input: "x" })).toMatchObject({ decodeBase64: true });
    expect(JSON.parse(prepareBody("/v1/embeddings", { model: "m", input: "x" }).json).encoding_format).toBe("base64");
    expect(prepareBody("/v1/embeddings", { model: "m", input: "x", encoding_format: "float" }).decodeBase64).toBe(
      false,
    );
  });
});

describe("shapeResult", () => {
  it("decodes base64 embeddings to numbers", () => {
    const floats = new Float32Array([0.5, -1.25, 3]);
    const body = { data: [{ embedding: Buffer.from(floats.buffer).toString("base64") }] };
    expect((shapeResult("/v1/embeddings", body, true, null) as typeof body).data[0]!.embedding).toEqual([
      0.5, -1.25, 3,
    ]);
  });

  it("adds output_text to responses and a non-enumerable _request_id", () => {
    const body = {
      output: [
        { type: "reasoning" },
        {
          type: "message",
          content: [
            { type: "output_text", text: "Hello" },
            { type: "refusal" },
            { type: "output_text", text: " world" },
          ],
        },
      ],
    };
    const shaped = shapeResult("/v1/responses", body, false, "req_1") as { output_text: string; _request_id: string };
    expect(shaped.output_text).toBe("Hello world");
    expect(shaped._request_id).toBe("req_1");
    expect(Object.keys(shaped)).not.toContain("_request_id");
  });
});
