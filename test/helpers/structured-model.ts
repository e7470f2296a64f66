// A real-time OpenAI-compatible model for the emulator's upstream mode, with just enough sense for structured output
// and tools: a JSON prompt comes back as the JSON answer (response_format) or as a call's arguments (tools); a tool
// result comes back as "tool said: …"; anything else is "echo: <prompt>". Embeddings are [index, 1, 0].
import http from "node:http";
import type { AddressInfo } from "node:net";

type Json = Record<string, any>;

const text = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content.map((p: Json) => (typeof p?.text === "string" ? p.text : "")).join("")
      : "";

function asObject(prompt: string): Json | undefined {
  try {
    const v = JSON.parse(prompt);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function chat(body: Json): Json {
  const messages: Json[] = Array.isArray(body.messages) ? body.messages : [];
  const last = messages.at(-1) ?? {};
  const prompt = text([...messages].reverse().find((m) => m.role === "user")?.content);
  const tools: Json[] = Array.isArray(body.tools) ? body.tools : [];
  const forced = body.tool_choice?.function?.name as string | undefined;
  let message: Json;
  if (last.role === "tool") {
    message = { role: "assistant", content: `tool said: ${text(last.content)}` };
  } else if (tools.length && asObject(prompt)) {
    const name = forced ?? tools[0]!.function.name;
    message = {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name, arguments: prompt } }],
    };
  } else if (body.response_format?.type === "json_schema" || body.response_format?.type === "json_object") {
    message = { role: "assistant", content: prompt };
  } else {
    message = { role: "assistant", content: `echo: ${prompt}` };
  }
  return {
    id: "chatcmpl-structured",
    object: "chat.completion",
    created: 0,
    model: body.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: message.tool_calls ? "tool_calls" : "stop" }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

function embeddings(body: Json): Json {
  const inputs: unknown[] = Array.isArray(body.input) ? body.input : [body.input];
  const encode = (v: number[]) =>
    body.encoding_format === "base64" ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v;
  return {
    object: "list",
    model: body.model,
    data: inputs.map((_, i) => ({ object: "embedding", index: i, embedding: encode([i, 1, 0]) })),
    usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
  };
}

export async function startStructuredModel() {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as Json;
      const answer = req.url?.endsWith("/embeddings") ? embeddings(body) : chat(body);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
