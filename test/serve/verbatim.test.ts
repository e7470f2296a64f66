// serve hands the client's body text to the batch line as it is when nothing in it changes, and re-encodes it
// otherwise; the answer is the provider's result body.
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeProvider, type Provider } from "../helpers/provider.js";
import { serve, type ServeHandle } from "../../src/serve/index.js";

const HEAD = (line: string) => line.slice(0, line.indexOf(',"body":') + ',"body":'.length);

describe("the client's body bytes in the batch line", () => {
  let provider: Provider;
  let proxy: ServeHandle;
  beforeAll(async () => {
    provider = await fakeProvider(() => ({ status: 200 }));
    proxy = await serve({
      port: 0,
      apiKey: "k",
      baseURL: provider.url,
      batchWindowMs: 5,
      pollIntervalMs: 5,
      log: false,
    });
  });
  afterAll(async () => {
    await proxy.close({ timeoutMs: 0 });
    await provider.close();
  });

  async function send(body: string) {
    const res = await request(`${proxy.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.body.text();
    const line = provider.uploads.flatMap((u) => u.lines).at(-1) ?? "";
    return { status: res.statusCode, headers: res.headers, text, line, sent: line.slice(HEAD(line).length, -1) };
  }

  it("passes a body that needs no change through byte for byte", async () => {
    const body = '{ "messages" : [{"content":"caf\\u00e9 1","role":"user"}], "temperature": 1.50, "model":"m" }';
    const r = await send(body);
    expect(r.status).toBe(200);
    expect(r.sent).toBe(body);
    expect(r.line).toMatch(/^\{"custom_id":"[^"]+","method":"POST","url":"\/v1\/chat\/completions","body":/);
  });

  it("re-encodes a body with stream fields, line breaks, or a second model key", async () => {
    const stream = await send('{"model":"m","stream":false,"messages":[{"role":"user","content":"s"}]}');
    expect(stream.sent).toBe('{"model":"m","messages":[{"role":"user","content":"s"}]}');
    const pretty = await send('{\n  "model": "m",\n  "messages": [{"role": "user", "content": "p"}]\n}');
    expect(pretty.sent).toBe('{"model":"m","messages":[{"role":"user","content":"p"}]}');
    const twice = await send('{"model":"x","messages":[{"role":"user","content":"t"}],"model":"m"}');
    expect(twice.sent).toBe('{"model":"m","messages":[{"role":"user","content":"t"}]}');
  });

  it("answers with the provider's result body, status and headers", async () => {
    const r = await send('{"model":"m","messages":[{"role":"user","content":"a"}]}');
    const customId = JSON.parse(r.line).custom_id as string;
    const result = provider.files
      .get(`out_${provider.batches.size}`)!
      .map((l) => JSON.parse(l))
      .at(-1);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["x-autobatch-custom-id"]).toBe(customId);
    expect(r.headers["x-request-id"]).toBe(`req-${customId}`);
    expect(r.text).toBe(JSON.stringify(result.response.body));
  });

  it("still refuses invalid JSON and non-objects with 400 invalid_json", async () => {
    const uploads = provider.uploads.length;
    for (const body of ["{not json", "[1]", '"m"', "null"]) {
      const r = await send(body);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error.code).toBe("invalid_json");
    }
    expect(provider.uploads).toHaveLength(uploads);
  });
});
