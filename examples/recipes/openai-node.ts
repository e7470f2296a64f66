// Recipe: openai-node, unchanged call sites, every call batched. Run it against the emulator with
//   npx autobatch emulator &   OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=x npx tsx examples/recipes/openai-node.ts
import OpenAI from "openai";
import { pathToFileURL } from "node:url";
import { createBatchingFetch, type BatchingFetchOptions } from "autobatch";

export async function main(options: BatchingFetchOptions = {}): Promise<string[]> {
  const batchingFetch = createBatchingFetch({ batchWindowMs: 2_000, ...options }); // key and URL from the environment
  const { baseURL } = batchingFetch; // the SDK must call the same baseURL to be batched
  const { apiKey } = options; // undefined: the SDK reads OPENAI_API_KEY, as the fetch does
  const client = new OpenAI({
    baseURL,
    apiKey,
    fetch: batchingFetch,
    timeout: 24 * 3600 * 1000, // a batch may take its whole completion window; openai-node's default is 10 minutes
  });
  try {
    const questions = ["Name a prime number.", "What is the capital of France?", "Say hi in Italian."];
    const answers = await Promise.all(
      questions.map((q) =>
        client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: q }] }),
      ),
    );
    return answers.map((a) => a.choices[0]?.message.content ?? "");
  } finally {
    await batchingFetch.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) console.log(await main());
