// A close that waits for its calls sends at once a line the store hands back to be submitted while it waits, rather
// than leaving it in a buffer for the whole batch window.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { AutoBatcher, type AutoBatchEvent } from "../../src/index.js";
import { chat, KEY, rejection, waitFor } from "../helpers/client.js";

const dir = mkdtempSync(join(tmpdir(), "autobatch-close-flush-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let emu: Emulator | undefined;
let client: AutoBatcher | undefined;
afterEach(async () => {
  await client?.close({ cancel: true }).catch(() => undefined);
  await emu?.close();
  emu = client = undefined;
});

describe("close with a store", () => {
  it("a keyed call whose first caller left is submitted at once while the client closes, whatever the window", async () => {
    emu = await startEmulator({ apiKey: KEY });
    const events: AutoBatchEvent[] = [];
    client = new AutoBatcher({
      apiKey: KEY,
      baseURL: emu.baseURL,
      batchWindowMs: 3_600_000,
      pollIntervalMs: 10,
      store: join(dir, "s.db"),
      onEvent: (e) => events.push(e),
    });
    const ac = new AbortController();
    const first = rejection(client.chat.completions.create(chat("p"), { idempotencyKey: "k", signal: ac.signal }));
    let answer: string | null | undefined;
    const second = client.chat.completions.create(chat("p"), { idempotencyKey: "k" });
    void second.then(
      (r) => (answer = r.choices[0]!.message.content),
      () => undefined,
    );
    // The first is buffered; the second waits for it.
    await waitFor(() => client!.stats.buffered === 1, "the first call to be buffered");
    ac.abort();
    expect((await first).name).toBe("APIUserAbortError");
    const closing = client.close();
    await waitFor(() => answer !== undefined, "the second call's answer");
    await closing;
    expect(answer).toBe("echo: p");
    expect(events.filter((e) => e.type === "flush").map((e) => (e as { reason: string }).reason)).toEqual(["close"]);
    expect(emu.counters.linesExecuted).toBe(1);
  });
});
