// A provider that quotes the key back (OpenAI's "Incorrect API key provided: sk-…") in result lines, error-file
// lines, batch errors, bodies and headers: the key reaches no message, event, log line or HTTP answer.
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { AutoBatcher, type AutoBatchEvent } from "../src/index.js";
import { serve } from "../src/serve/index.js";
import type { LogEntry } from "../src/serve/log.js";
import { chat } from "./helpers/client.js";
import { errorLine, okLine } from "./helpers/provider.js";
import { scriptedProvider } from "./helpers/scripted-provider.js";
import { json } from "./helpers/server.js";

const KEY = "sk-proj-leaky-0123456789abcdefghij";
const QUOTE = `Incorrect API key provided: ${KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`;

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** Four calls: one answered with the key in its content, one 401 line, one error-file line, one with no line. */
function leakyProvider() {
  return scriptedProvider({
    output: ([a, b]) => `${okLine(a!, `you sent ${KEY}`)}\n${errorLine(b!, 401, QUOTE)}\n{"bogus":"${KEY}"}\n`,
    errors: ([, , c]) =>
      `${JSON.stringify({ id: "br-c", custom_id: c, response: null, error: { code: "invalid_api_key", message: QUOTE } })}\n`,
    batch: (ids) => ({
      request_counts: { total: ids.length, completed: 2, failed: 1 },
      errors: { object: "list", data: [{ code: "invalid_api_key", line: 4, message: QUOTE }] },
    }),
    override: (req, res) => {
      if (!req.url.startsWith("/v1/models")) return false;
      json(200, { object: "list", data: [{ id: "m", owned_by: KEY }] }, { "x-request-id": KEY })(req, res);
      return true;
    },
  });
}

/** Everything an error exposes: message, own fields (error, code, headers…), cause, stack. */
function exposed(err: unknown): string {
  const e = err as Error & { headers?: Headers };
  return [
    e.message,
    e.stack,
    String(e.cause),
    JSON.stringify({
      ...e,
      headers: e.headers ? Object.fromEntries(e.headers as unknown as Iterable<[string, string]>) : undefined,
    }),
  ].join("\n");
}

describe("the key never leaks from provider text", () => {
  it("AutoBatcher: no settled value, error or event carries the key", async () => {
    const server = await leakyProvider();
    const events: AutoBatchEvent[] = [];
    const client = new AutoBatcher({
      apiKey: KEY,
      baseURL: server.url,
      batchSize: 4,
      pollIntervalMs: 5,
      onEvent: (e) => events.push(e),
    });
    close = async () => {
      await client.close({ cancel: true });
      await server.close();
    };
    const outcomes = await Promise.allSettled(["a", "b", "c", "d"].map((p) => client.chat.completions.create(chat(p))));
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected"]);
    const first = (outcomes[0] as PromiseFulfilledResult<{ choices: { message: { content: string } }[] }>).value;
    expect(first.choices[0]!.message.content).toBe("you sent [redacted]");
    const reasons = outcomes.slice(1).map((o) => (o as PromiseRejectedResult).reason);
    expect(reasons.map((r) => r.message)).toEqual([
      expect.stringContaining("Incorrect API key provided: [redacted]"),
      expect.stringContaining("Incorrect API key provided: [redacted]"),
      expect.stringContaining("provider errors: invalid_api_key (line 4): Incorrect API key provided: [redacted]"),
    ]);
    for (const r of reasons) expect(exposed(r)).not.toContain(KEY);
    expect(events.some((e) => e.type === "warning")).toBe(true);
    expect(JSON.stringify(events)).not.toContain(KEY);
  });

  it("serve: no HTTP answer (body or header) and no log line carries the key", async () => {
    const server = await leakyProvider();
    const logs: LogEntry[] = [];
    const proxy = await serve({
      port: 0,
      apiKey: KEY,
      baseURL: server.url,
      batchSize: 4,
      pollIntervalMs: 5,
      log: (e) => logs.push(e),
    });
    close = async () => {
      await proxy.close({ timeoutMs: 0 });
      await server.close();
    };
    const answers = await Promise.all(
      ["a", "b", "c", "d"].map(async (p) => {
        const res = await request(`${proxy.baseURL}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chat(p)),
        });
        return { status: res.statusCode, headers: JSON.stringify(res.headers), body: await res.body.text() };
      }),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 401, 502, 502]);
    expect(answers[1]!.body).toContain("Incorrect API key provided: [redacted]");
    const models = await request(`${proxy.baseURL}/models`);
    const modelsText = JSON.stringify(models.headers) + (await models.body.text());
    expect(modelsText).toContain("[redacted]");
    for (const a of answers) expect(a.headers + a.body).not.toContain(KEY);
    expect(modelsText).not.toContain(KEY);
    expect(logs.some((l) => l.event === "engine.warning")).toBe(true);
    expect(JSON.stringify(logs)).not.toContain(KEY);
  });
});
