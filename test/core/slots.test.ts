import { createClock } from "@sinonjs/fake-timers";
import { describe, expect, it } from "vitest";
import { chat, onFakeProvider, waitFor } from "../helpers/client.js";
import { json } from "../helpers/server.js";

const start = onFakeProvider();

describe("concurrency slots", () => {
  it("a poll waiting out Retry-After holds no slot: a new upload goes ahead at once", async () => {
    const clock = createClock();
    const { client, p } = await start({ maxConcurrency: 1, batchSize: 1, pollIntervalMs: 1_000, clock });
    void client.chat.completions.create(chat("first")).catch(() => undefined);
    await waitFor(() => p.batches.size === 1, "the first batch");
    // Its status read is told to come back in a minute.
    p.once(
      (r) => r.method === "GET" && r.url === "/v1/batches/batch_1",
      json(429, { error: { message: "slow down" } }, { "retry-after": "60" }),
    );
    await clock.tickAsync(1_000);
    await waitFor(() => p.requests("GET", "/v1/batches/batch_1").length === 1, "the poll");
    void client.chat.completions.create(chat("second")).catch(() => undefined);
    await waitFor(() => p.uploads.length === 2, "the second upload");
    await waitFor(() => p.batches.size === 2, "the second batch");
    expect(clock.now).toBe(1_000);
  });
});
