// The built-in model's answers, the per-line markers, and upstream mode against a tiny local
// real-time server.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { call, chatLine, jsonl, parseLines, startBatch, until, upload, waitFor } from "../helpers/emulator-client.js";

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator();
});
afterAll(() => emu.close());

/** Runs lines to completion; returns output and error lines keyed by custom_id. */
async function run(target: Emulator, lines: unknown[], endpoint = "/v1/chat/completions") {
  const b = await startBatch(target, lines, { endpoint });
  const done = await waitFor(target, b.id, ["completed", "failed", "expired"]);
  const read = async (id: string | null) => (id ? (await call(target, "GET", `/files/${id}/content`)).text : "");
  return { batch: done, out: await read(done.output_file_id), err: await read(done.error_file_id) };
}

const byId = (text: string) => Object.fromEntries(parseLines(text).map((l) => [l.custom_id, l]));

describe("built-in model", () => {
  it("answers chat completions with an echo of the last user message", async () => {
    const line = chatLine("c1", "ignored");
    line.body.messages = [
      { role: "system", content: "be brief" },
      { role: "user", content: "first" },
      { role: "assistant", content: "ok" },
      { role: "user", content: [{ type: "text", text: "second" }] },
    ];
    const body = byId((await run(emu, [line])).out).c1.response.body;
    expect(body).toMatchObject({
      object: "chat.completion",
      model: "m",
      choices: [
        { index: 0, finish_reason: "stop", message: { role: "assistant", content: "echo: second", refusal: null } },
      ],
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it("answers with a tool call when tools are given and the prompt asks for one", async () => {
    const line = chatLine("t1", "weather? [[tool:get_weather]]");
    line.body.tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
    const noTools = chatLine("t2", "weather? [[tool:get_weather]]");
    const got = byId((await run(emu, [line, noTools])).out);
    const choice = got.t1.response.body.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls[0]).toMatchObject({ type: "function", function: { name: "get_weather" } });
    expect(JSON.parse(choice.message.tool_calls[0].function.arguments)).toEqual({
      prompt: "weather? [[tool:get_weather]]",
    });
    expect(got.t2.response.body.choices[0].finish_reason).toBe("stop");
  });

  it("answers embeddings deterministically, as floats or little-endian float32 base64", async () => {
    const line = (id: string, extra: Record<string, unknown>) => ({
      custom_id: id,
      method: "POST",
      url: "/v1/embeddings",
      body: { model: "e", input: ["alpha", "beta"], ...extra },
    });
    const got = byId(
      (
        await run(
          emu,
          [
            line("f", {}),
            line("f2", {}),
            line("b", { encoding_format: "base64" }),
            line("d", { dimensions: 4, input: "alpha" }),
          ],
          "/v1/embeddings",
        )
      ).out,
    );
    const floats = got.f.response.body;
    expect(floats).toMatchObject({ object: "list", model: "e", usage: { prompt_tokens: 2, total_tokens: 2 } });
    expect(floats.data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
    expect(floats.data[0].embedding).toHaveLength(8);
    expect(floats.data[0].embedding).not.toEqual(floats.data[1].embedding);
    expect(got.f2.response.body.data).toEqual(floats.data);
    const b64 = Buffer.from(got.b.response.body.data[0].embedding as string, "base64");
    const decoded = Array.from(new Float32Array(b64.buffer, b64.byteOffset, b64.length / 4));
    expect(decoded).toEqual(floats.data[0].embedding);
    expect(got.d.response.body.data[0].embedding).toHaveLength(4);
  });

  it("answers responses without output_text, and completions and messages", async () => {
    const lines = [
      { custom_id: "r", method: "POST", url: "/v1/responses", body: { model: "m", input: "tell me" } },
      { custom_id: "c", method: "POST", url: "/v1/completions", body: { model: "m", prompt: "once" } },
      {
        custom_id: "a",
        method: "POST",
        url: "/v1/messages",
        body: { model: "m", max_tokens: 5, messages: [{ role: "user", content: "hey" }] },
      },
    ];
    const got = byId((await run(emu, lines, "/v1/responses")).out);
    const resp = got.r.response.body;
    expect(resp).toMatchObject({
      object: "response",
      status: "completed",
      output: [
        {
          type: "message",
          role: "assistant",
          status: "completed",
          content: [{ type: "output_text", text: "echo: tell me", annotations: [] }],
        },
      ],
    });
    expect(resp.id).toMatch(/^resp_/);
    expect("output_text" in resp).toBe(false);
    expect(resp.usage.total_tokens).toBe(resp.usage.input_tokens + resp.usage.output_tokens);
    expect(got.c.response.body.choices[0].text).toBe("echo: once");
    expect(got.a.response.body.content[0].text).toBe("echo: hey");
  });
});

describe("markers", () => {
  it("[[status]], [[drop]], [[duplicate]] and [[malformed]] shape what lands in the files", async () => {
    const { batch, out, err } = await run(emu, [
      chatLine("ok", "fine"),
      chatLine("fail", "x [[status:503]]"),
      chatLine("gone", "x [[drop]]"),
      chatLine("twice", "x [[duplicate]]"),
      chatLine("broken", "x [[malformed]]"),
    ]);
    expect(batch.status).toBe("completed");
    expect(batch.request_counts).toEqual({ total: 5, completed: 4, failed: 1 });
    const outLines = out.split("\n").filter(Boolean);
    expect(outLines.filter((l) => l.includes('"twice"'))).toHaveLength(2);
    expect(out).not.toContain('"gone"');
    expect(err).not.toContain('"gone"');
    const broken = outLines.find((l) => l.includes('"broken"'))!;
    expect(() => JSON.parse(broken)).toThrow();
    expect(JSON.parse(JSON.parse(byId(err).fail.error.message).details.body).error.type).toBe("server_error");
    expect(emu.lineAvailableAt("gone")).toBeUndefined();
  });

  it("writes HTTP-failure lines in OpenAI's shape in the openai flavor", async () => {
    const oai = await startEmulator({ flavor: "openai" });
    try {
      const { err } = await run(oai, [chatLine("a", "[[status:429]]"), chatLine("b", "fine")]);
      expect(byId(err).a).toMatchObject({
        error: null,
        response: { status_code: 429, body: { error: { code: "rate_limit_exceeded" } } },
      });
    } finally {
      await oai.close();
    }
  });

  it("draws random latency from a seeded range", async () => {
    const seeded = await startEmulator({ latencyMs: [1, 15], seed: 42 });
    try {
      const { batch } = await run(
        seeded,
        Array.from({ length: 6 }, (_, i) => chatLine(`s${i}`, "x")),
      );
      expect(batch.request_counts.completed).toBe(6);
    } finally {
      await seeded.close();
    }
  });
});

describe("upstream mode", () => {
  let upstream: Server;
  let upstreamURL: string;
  const seen: Array<{ path: string; auth: string | undefined; body: Record<string, any> }> = [];
  let inFlight = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    upstream = createServer(async (req: IncomingMessage, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, any>;
      seen.push({ path: req.url ?? "", auth: req.headers.authorization, body });
      await new Promise((r) => setTimeout(r, 10));
      inFlight--;
      const text = JSON.stringify(body.messages?.[0]?.content ?? "");
      if (text.includes("upstream-fail")) {
        res
          .writeHead(422, { "content-type": "application/json" })
          .end(
            JSON.stringify({ error: { message: "bad input", type: "invalid_request_error", param: null, code: null } }),
          );
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id: "up-1",
          object: "chat.completion",
          choices: [{ message: { role: "assistant", content: `upstream says ${text}` } }],
        }),
      );
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    upstreamURL = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  });
  afterAll(() => new Promise<void>((r) => upstream.close(() => r())));

  it("sends each line to the upstream with its own key, bounded by upstream.concurrency", async () => {
    const proxy = await startEmulator({
      apiKey: "emulator-key",
      upstream: { baseURL: upstreamURL + "/", apiKey: "upstream-key", concurrency: 2 },
    });
    try {
      const lines = [
        ...Array.from({ length: 6 }, (_, i) => chatLine(`u${i}`, `q${i}`)),
        chatLine("bad", "upstream-fail"),
      ];
      const auth = { authorization: "Bearer emulator-key" };
      const file = (await upload(proxy, jsonl(lines), { headers: auth })).json();
      const b = (
        await call(proxy, "POST", "/batches", {
          headers: auth,
          json: { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
        })
      ).json();
      const done = await until(async () => {
        const cur = (await call(proxy, "GET", `/batches/${b.id}`, { headers: auth })).json();
        return cur.status === "completed" ? cur : undefined;
      }, "upstream batch");
      expect(done.request_counts).toEqual({ total: 7, completed: 6, failed: 1 });
      expect(seen.every((s) => s.path === "/v1/chat/completions" && s.auth === "Bearer upstream-key")).toBe(true);
      expect(seen).toHaveLength(7);
      expect(maxInFlight).toBe(2);
      const out = byId((await call(proxy, "GET", `/files/${b.output_file_id}/content`, { headers: auth })).text);
      expect(out.u3.response.body.choices[0].message.content).toBe('upstream says "q3"');
      const err = byId((await call(proxy, "GET", `/files/${b.error_file_id}/content`, { headers: auth })).text);
      const reason = JSON.parse(err.bad.error.message);
      expect(reason).toMatchObject({ type: "NonRetriableHttpStatus", details: { status: 422 } });
      expect(JSON.parse(reason.details.body).error.message).toBe("bad input");
    } finally {
      await proxy.close();
    }
  });

  it("turns connection errors into error lines", async () => {
    const dead = await startEmulator({ flavor: "openai", upstream: { baseURL: "http://127.0.0.1:1/v1" } });
    try {
      const { batch, err } = await run(dead, [chatLine("n1", "x")]);
      expect(batch.request_counts).toMatchObject({ completed: 0, failed: 1 });
      expect(byId(err).n1).toMatchObject({ response: null, error: { code: "upstream_connection_error" } });
    } finally {
      await dead.close();
    }
  });
});
