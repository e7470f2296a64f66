// Recipe: the Vercel AI SDK (ai@6, @ai-sdk/openai@3): generateText and embed, batched. Run it against the emulator with
//   npx autobatch emulator &   OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=x npx tsx examples/recipes/ai-sdk.ts
import { createOpenAI } from "@ai-sdk/openai";
import { embed, generateText } from "ai";
import { pathToFileURL } from "node:url";
import { createBatchingFetch, type BatchingFetchOptions } from "autobatch";

export async function main(options: BatchingFetchOptions = {}): Promise<{ texts: string[]; dimensions: number }> {
  const batchingFetch = createBatchingFetch({ batchWindowMs: 2_000, ...options }); // key and URL from the environment
  const { baseURL } = batchingFetch; // the SDK must call the same baseURL to be batched
  const { apiKey } = options; // undefined: the SDK reads OPENAI_API_KEY, as the fetch does
  // The AI SDK sets no request timeout of its own, so nothing else to raise.
  const openai = createOpenAI({ baseURL, apiKey, fetch: batchingFetch });
  try {
    const topics = ["tides", "volcanoes", "bees"];
    const [texts, vector] = await Promise.all([
      Promise.all(
        topics.map((t) => generateText({ model: openai("gpt-4o-mini"), prompt: `One sentence about ${t}.` })),
      ),
      embed({ model: openai.embedding("text-embedding-3-small"), value: "sunny day at the beach" }),
    ]);
    return { texts: texts.map((r) => r.text), dimensions: vector.embedding.length };
  } finally {
    await batchingFetch.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) console.log(await main());
