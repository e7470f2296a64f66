// GET /v1/models in both flavours: clients (openai-node, LangChain, UIs) probe it before calling.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import type { Flavor } from "../../src/emulator/types.js";

describe.each<Flavor>(["openai", "doubleword"])("GET /v1/models (%s)", (flavor) => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({ flavor, apiKey: "emu-key" });
  });
  afterAll(() => emu.close());

  it("lists a model and retrieves any name, behind the emulator's key", async () => {
    const client = new OpenAI({ apiKey: "emu-key", baseURL: emu.baseURL, maxRetries: 0 });
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(["autobatch-emulator"]);
    expect(await client.models.retrieve("gpt-test")).toMatchObject({ id: "gpt-test", object: "model" });
    const anonymous = new OpenAI({ apiKey: "wrong", baseURL: emu.baseURL, maxRetries: 0 });
    await expect(anonymous.models.list()).rejects.toMatchObject({ status: 401 });
  });
});
