// Run only by test/compat/vitest.config.ts: proves its swap took effect, in the tests and in src/ alike.
import { VERSION as aiSdkOpenAIVersion } from "@ai-sdk/openai";
import { OpenAI } from "openai";
import { VERSION as openaiVersion } from "openai/version";
import { expect, it } from "vitest";
import { BatchOpenAI } from "../../src/openai.js";

it("resolves openai 7 and @ai-sdk/openai 4, and BatchOpenAI subclasses that openai", async () => {
  expect(openaiVersion).toMatch(/^7\./);
  expect(aiSdkOpenAIVersion).toMatch(/^4\./);
  const client = new BatchOpenAI({ apiKey: "k" });
  expect(client).toBeInstanceOf(OpenAI);
  await client.close();
});
