import { createClock } from "@sinonjs/fake-timers";
import { afterEach, describe, expect, it } from "vitest";
import { AutoBatcher } from "../../src/index.js";
import { chat } from "../helpers/client.js";
import { fakeProvider, type Provider } from "../helpers/provider.js";
import { json } from "../helpers/server.js";
import { KEY } from "./harness.js";

let p: Provider | undefined;
let client: AutoBatcher | undefined;
afterEach(async () => {
  await client?.close({ cancel: true });
  await p?.close();
  p = client = undefined;
});

/** Real I/O in small steps until `check` holds; bounded. The fake clock does not move. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe("concurrency slots", () => {
  it("a poll waiting out Retry-After holds no slot: a new upload goes ahead at once", async () => {
    p = await fakeProvider();
    const clock = createClock();
    client = new AutoBatcher({
      apiKey: KEY,
      baseURL: p.url,
      maxConcurrency: 1,
      batchSize: 1,
      pollIntervalMs: 1_000,
      clock,
    });
    void client.chat.completions.create(chat("first")).catch(() => undefined);
    await until(() => p!.batches.size === 1, "the first batch");
    // Its status read is told to come back in a minute.
    p.once(
      (r) => r.method === "GET" && r.url === "/v1/batches/batch_1",
      json(429, { error: { message: "slow down" } }, { "retry-after": "60" }),
    );
    await clock.tickAsync(1_000);
    await until(() => p!.requests("GET", "/v1/batches/batch_1").length === 1, "the poll");
    void client.chat.completions.create(chat("second")).catch(() => undefined);
    await until(() => p!.uploads.length === 2, "the second upload");
    await until(() => p!.batches.size === 2, "the second batch");
    expect(clock.now).toBe(1_000);
  });
});
