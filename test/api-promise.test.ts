// AutoBatcher's methods return an openai-node-style APIPromise; its errors follow openai-node's names and messages.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoBatcher } from "../src/client.js";
import { APIPromise } from "../src/api-promise.js";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  AutoBatchError,
  BadRequestError,
  InternalServerError,
  isAPIError,
  NotFoundError,
  OpenAIError,
  RateLimitError,
} from "../src/errors.js";

let emu: Emulator;
let client: AutoBatcher;
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
  client = new AutoBatcher({ apiKey: "test-key", baseURL: emu.baseURL, batchWindowMs: 10, pollIntervalMs: 10 });
});
afterAll(async () => {
  await client.close({ cancel: true });
  await emu.close();
});

const user = (content: string) => [{ role: "user" as const, content }];

describe("AutoBatcher APIPromise", () => {
  it("is a real Promise with withResponse() and asResponse()", async () => {
    const p = client.chat.completions.create({ model: "gpt-test", messages: user("hello") });
    expect(p).toBeInstanceOf(Promise);
    expect(p).toBeInstanceOf(APIPromise);
    const { data, response, request_id } = await p.withResponse();
    expect(data.choices[0]!.message.content).toBe("echo: hello");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(request_id).toMatch(/^req_/);
    expect(request_id).toBe(data._request_id);
    expect(((await response.json()) as { id: string }).id).toBe(data.id);
    // The same promise still awaits to the same data, and asResponse() gives a fresh, readable body.
    expect(await p).toBe(data);
    const again = await p.asResponse();
    expect(((await again.json()) as { id: string }).id).toBe(data.id);
  });

  it("attaches _request_id non-enumerably, so it stays out of JSON and spreads", async () => {
    const r = await client.chat.completions.create({ model: "gpt-test", messages: user("rid") });
    expect(r._request_id).toMatch(/^req_/);
    expect(Object.keys(r)).not.toContain("_request_id");
    expect(JSON.stringify(r)).not.toContain("_request_id");
    expect({ ...r }).not.toHaveProperty("_request_id");
  });

  it("works for embeddings (decoded to numbers) and responses (output_text)", async () => {
    const [emb, resp] = await Promise.all([
      client.embeddings.create({ model: "emb-test", input: "abc" }).withResponse(),
      client.responses.create({ model: "gpt-test", input: "r" }).withResponse(),
    ]);
    expect(typeof emb.data.data[0]!.embedding[0]).toBe("number");
    expect(((await emb.response.json()) as { data: { embedding: unknown }[] }).data[0]!.embedding).toEqual(
      emb.data.data[0]!.embedding,
    );
    expect(resp.data.output_text).toBe("echo: r");
    expect(resp.request_id).toMatch(/^req_/);
  });

  it("rejects through then, catch, finally and withResponse alike", async () => {
    const p = client.chat.completions.create({ model: "gpt-test", messages: user("[[status:404]] gone") });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe("404 Emulated failure (HTTP 404)");
    await expect(p.withResponse()).rejects.toBe(err);
    await expect(p.asResponse()).rejects.toBe(err);
    let ran = false;
    await expect(p.finally(() => (ran = true))).rejects.toBe(err);
    expect(ran).toBe(true);
  });

  it("settles its derived promises as plain Promises", async () => {
    const p = client.chat.completions.create({ model: "gpt-test", messages: user("d") });
    const derived = p.then((r) => r.id);
    expect(derived).not.toBeInstanceOf(APIPromise);
    expect(typeof (await derived)).toBe("string");
    await expect(Promise.resolve(p)).resolves.toMatchObject({ object: "chat.completion" });
  });

  it("rejects with APIUserAbortError when the signal aborts", async () => {
    const ac = new AbortController();
    const p = client.chat.completions.create({ model: "gpt-test", messages: user("a") }, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(APIUserAbortError);
    await expect(p.withResponse()).rejects.toBeInstanceOf(APIUserAbortError);
  });
});

describe("error classes", () => {
  it("follow openai-node's names, fields and message rule", () => {
    const err = APIError.generate(
      400,
      { message: "bad thing", type: "invalid_request_error", param: "messages", code: "x" },
      undefined,
      new Headers({ "x-request-id": "req_1" }),
      {
        customId: "c1",
        batchId: "b1",
      },
    );
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err).toBeInstanceOf(APIError);
    expect(err).toBeInstanceOf(OpenAIError);
    expect(err).toBeInstanceOf(AutoBatchError);
    expect(err).toMatchObject({
      name: "BadRequestError",
      status: 400,
      code: "x",
      param: "messages",
      type: "invalid_request_error",
      requestID: "req_1",
      customId: "c1",
      batchId: "b1",
    });
    expect(err.message).toBe("400 bad thing");
    expect(err.error).toEqual({ message: "bad thing", type: "invalid_request_error", param: "messages", code: "x" });
    expect(isAPIError(err)).toBe(true);
    expect(isAPIError(new Error("x"))).toBe(false);
  });

  it("pick the subclass by status and build the message as openai-node does", () => {
    expect(APIError.generate(429, { message: "slow down" }, undefined)).toBeInstanceOf(RateLimitError);
    expect(APIError.generate(503, undefined, "unavailable")).toBeInstanceOf(InternalServerError);
    expect(APIError.generate(418, undefined, "teapot").constructor).toBe(APIError);
    expect(APIError.generate(500, undefined, undefined).message).toBe("500 status code (no body)");
    expect(APIError.generate(400, { code: "only_code" }, undefined).message).toBe('400 {"code":"only_code"}');
    expect(APIError.generate(undefined, undefined, undefined).message).toBe("(no status code or body)");
    // A message that already carries the status (a rethrown error) is not prefixed twice.
    expect(APIError.generate(502, undefined, "502 POST /files: bad gateway").message).toBe(
      "502 POST /files: bad gateway",
    );
  });

  it("keep openai-node's default messages for abort and connection errors", () => {
    expect(new APIUserAbortError().message).toBe("Request was aborted.");
    expect(new APIUserAbortError({ message: "stopped" }).message).toBe("stopped");
    expect(new APIConnectionError().message).toBe("Connection error.");
    expect(new APIUserAbortError().status).toBeUndefined();
  });
});
