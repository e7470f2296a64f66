// Recipe: BatchOpenAI, an `OpenAI` whose chat, embeddings and responses calls are batched; code typed against
// openai takes it as it is. Run it against the emulator with
//   npx autobatch emulator &   OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=x npx tsx examples/recipes/batch-openai.ts
import type OpenAI from "openai";
import { pathToFileURL } from "node:url";
import { BatchOpenAI, type BatchOpenAIOptions } from "autobatch/openai";

/** Existing code, written for openai-node. */
async function ask(client: OpenAI, question: string): Promise<string> {
  const r = await client.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: question }],
  });
  return r.choices[0]?.message.content ?? "";
}

export async function main(options: BatchOpenAIOptions = {}): Promise<string[]> {
  // Key and URL from the environment; batched calls wait as long as their batch may run, real-time ones 10 minutes.
  await using client = new BatchOpenAI({ batchWindowMs: 2_000, ...options });
  const questions = ["Name a prime number.", "What is the capital of France?", "Say hi in Italian."];
  return Promise.all(questions.map((q) => ask(client, q)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) console.log(await main());
