// The recipes run as they are against the emulator (openai-node, AI SDK, LangChain.js) and appear verbatim in the docs.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";

// The recipes import the published name; here it is the source tree, so no build is needed.
vi.mock("autobatch", () => import("../src/index.js"));
vi.mock("autobatch/openai", () => import("../src/openai.js"));

const { main: openaiNode } = await import("../examples/recipes/openai-node.js");
const { main: aiSdk } = await import("../examples/recipes/ai-sdk.js");
const { main: langchain } = await import("../examples/recipes/langchain.js");
const { main: batchOpenAI } = await import("../examples/recipes/batch-openai.js");

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator();
});
afterAll(() => emu.close());

const fast = () => ({ apiKey: "test-key", baseURL: emu.baseURL, batchWindowMs: 10, pollIntervalMs: 10 });

/** Runs `fn` and reports how many batches the emulator created meanwhile. */
async function counting<T>(fn: () => Promise<T>): Promise<{ result: T; batches: number }> {
  const before = emu.counters.batchesCreated;
  const result = await fn();
  return { result, batches: emu.counters.batchesCreated - before };
}

describe("recipes", () => {
  it("run on the source tree", async () => {
    expect((await import("autobatch")).createBatchingFetch).toBe((await import("../src/index.js")).createBatchingFetch);
  });

  it("openai-node: three chat calls, one batch", async () => {
    const { result, batches } = await counting(() => openaiNode(fast()));
    expect(result).toEqual([
      "echo: Name a prime number.",
      "echo: What is the capital of France?",
      "echo: Say hi in Italian.",
    ]);
    expect(batches).toBe(1);
  });

  it("BatchOpenAI: a function typed (client: OpenAI), three calls, one batch", async () => {
    const { result, batches } = await counting(() => batchOpenAI(fast()));
    expect(result).toEqual([
      "echo: Name a prime number.",
      "echo: What is the capital of France?",
      "echo: Say hi in Italian.",
    ]);
    expect(batches).toBe(1);
  });

  it("Vercel AI SDK: generateText (Responses API) and embed, one batch per endpoint", async () => {
    const { result, batches } = await counting(() => aiSdk(fast()));
    expect(result.texts).toEqual([
      "echo: One sentence about tides.",
      "echo: One sentence about volcanoes.",
      "echo: One sentence about bees.",
    ]);
    expect(result.dimensions).toBeGreaterThan(0);
    expect(batches).toBe(2);
  });

  it("LangChain.js: .batch() and embedDocuments, one batch per endpoint", async () => {
    const { result, batches } = await counting(() => langchain(fast()));
    expect(result.answers).toEqual([
      "echo: Name a prime number.",
      "echo: What is the capital of France?",
      "echo: Say hi in Italian.",
    ]);
    expect(result.vectors).toBe(2);
    expect(batches).toBe(2);
  });
});

const recipe = (name: string) =>
  readFileSync(new URL(`../examples/recipes/${name}.ts`, import.meta.url), "utf8").trim();
const doc = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

describe("docs", () => {
  it("docs/fetch-and-frameworks.md shows each recipe exactly as tested", () => {
    const text = doc("docs/fetch-and-frameworks.md");
    for (const name of ["openai-node", "ai-sdk", "langchain"]) {
      expect(text, `docs copy of examples/recipes/${name}.ts`).toContain("```ts\n" + recipe(name) + "\n```");
    }
  });

  it("README.md shows the openai-node recipe exactly as tested", () => {
    expect(doc("README.md"), "README copy of examples/recipes/openai-node.ts").toContain(
      "```ts\n" + recipe("openai-node") + "\n```",
    );
  });
});
