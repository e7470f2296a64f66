import { describe, expect, it } from "vitest";
import type { AutoBatchEvent } from "../../src/index.js";
import { chat, onFakeProvider } from "../helpers/client.js";

const start = onFakeProvider(() => ({ status: 200 }));

describe("maxBuffers", () => {
  it("a client spreading calls over many models holds at most maxBuffers buffers: the oldest is flushed first", async () => {
    const { client, events } = await start({
      maxBuffers: 3,
      // Neither size nor time would flush during the test.
      batchSize: 1_000,
      batchWindowMs: 3_600_000,
      pollIntervalMs: 5,
    });
    const models = Array.from({ length: 10 }, (_, i) => `model-${i}`);
    const calls = models.map((m) => client.chat.completions.create(chat(`for ${m}`, m)));
    expect(client.stats.buffered).toBe(3);
    const flushes = events.filter((e) => e.type === "flush") as Extract<AutoBatchEvent, { type: "flush" }>[];
    expect(flushes.map((f) => [f.model, f.reason])).toEqual(models.slice(0, 7).map((m) => [m, "buffers"]));
    await client.close();
    const results = await Promise.all(calls);
    expect(results.map((r) => r.choices[0]!.message.content)).toEqual(models.map((m) => `echo: for ${m}`));
  });
});
