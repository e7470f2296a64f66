// Recipe: LangChain.js (@langchain/openai): `.batch()` and embeddings through the Batch API. Run it against the emulator with
//   npx autobatch emulator &   OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=x npx tsx examples/recipes/langchain.ts
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { pathToFileURL } from "node:url";
import { createBatchingFetch, type BatchingFetchOptions } from "autobatch";

export async function main(options: BatchingFetchOptions = {}): Promise<{ answers: string[]; vectors: number }> {
  const batchingFetch = createBatchingFetch({ batchWindowMs: 2_000, ...options }); // key and URL from the environment
  const { baseURL } = batchingFetch; // the SDK must call the same baseURL to be batched
  const { apiKey } = options; // undefined: the SDK reads OPENAI_API_KEY, as the fetch does
  const configuration = { baseURL, fetch: batchingFetch };
  // LangChain passes `timeout` to openai-node, whose default would abort after 10 minutes.
  const chat = new ChatOpenAI({ model: "gpt-4o-mini", apiKey, timeout: 24 * 3600 * 1000, configuration });
  const embeddings = new OpenAIEmbeddings({ model: "text-embedding-3-small", apiKey, configuration });
  try {
    const [messages, vectors] = await Promise.all([
      chat.batch(["Name a prime number.", "What is the capital of France?", "Say hi in Italian."]),
      embeddings.embedDocuments(["first document", "second document"]),
    ]);
    return { answers: messages.map((m) => m.text), vectors: vectors.length };
  } finally {
    await batchingFetch.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) console.log(await main());
