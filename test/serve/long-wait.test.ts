// Clients of `autobatch serve` wait as long as a batch runs. With fake time (undici's timers and openai-node's
// included) and a server that holds its answer: Node's own fetch gives up at 300 s, the documented client
// (createLongWaitFetch + a long `timeout`) is still waiting after 2 hours and gets the answer when it comes.
import { install } from "@sinonjs/fake-timers";
import http from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLongWaitFetch } from "../../src/index.js";

const realImmediate = setImmediate;
const turn = () => new Promise((r) => realImmediate(r));

let server: http.Server;
let baseURL: string;
const held: http.ServerResponse[] = [];
// One fake clock for the whole file: undici starts its timer tick once per process, on the clock of the moment.
let clock: ReturnType<typeof install>;
beforeAll(() => {
  clock = install({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date", "performance"] });
});
afterAll(() => clock.uninstall());
beforeEach(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    held.push(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterEach(async () => {
  held.length = 0;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Starts `call` once the request is held, then advances fake time by `ms` in steps, letting I/O run between. */
async function waitFake<T>(call: () => Promise<T>, ms: number) {
  let outcome: { value?: T; error?: unknown } | undefined;
  call().then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  for (let i = 0; i < 200 && held.length === 0; i++) await turn();
  expect(held).toHaveLength(1);
  for (let elapsed = 0; elapsed < ms && !outcome; elapsed += 10_000) {
    await clock.tickAsync(10_000);
    await turn();
  }
  for (let i = 0; i < 20 && !outcome; i++) await turn();
  return { outcome: () => outcome };
}

const completion = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 0,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "done" }, finish_reason: "stop", logprobs: null }],
};
const ask = (client: OpenAI) =>
  client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });

describe("a serve client waiting longer than 5 minutes", () => {
  it("fails with Node's own fetch (the problem)", async () => {
    const client = new OpenAI({ apiKey: "k", baseURL, timeout: 24 * 3600 * 1000, maxRetries: 0 });
    const { outcome } = await waitFake(() => ask(client), 310_000);
    expect(outcome()?.error).toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it("gets its answer after 2 hours with the documented client", async () => {
    const fetch = createLongWaitFetch();
    const client = new OpenAI({ apiKey: "k", baseURL, timeout: 24 * 3600 * 1000, maxRetries: 0, fetch });
    const { outcome } = await waitFake(() => ask(client), 2 * 3600 * 1000);
    expect(outcome()).toBeUndefined();
    held[0]!.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(completion));
    for (let i = 0; i < 200 && !outcome(); i++) await turn();
    expect((outcome()?.value as typeof completion | undefined)?.choices[0]?.message.content).toBe("done");
    await fetch.close();
  });

  it("still lets an idle limit be set, in milliseconds", async () => {
    const fetch = createLongWaitFetch({ idleTimeoutMs: 60_000 });
    const client = new OpenAI({ apiKey: "k", baseURL, timeout: 24 * 3600 * 1000, maxRetries: 0, fetch });
    const { outcome } = await waitFake(() => ask(client), 120_000);
    expect(outcome()?.error).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(() => createLongWaitFetch({ idleTimeoutMs: -1 })).toThrow(/idleTimeoutMs/);
  });
});
