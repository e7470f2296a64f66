// The built-in model: deterministic, network-free answers for each batch endpoint, plus the
// per-line test markers read from the request body.
import { openaiError } from "./reply.js";
import { createHash } from "node:crypto";

/** What executing one line produced. */
export type Outcome =
  | { kind: "ok"; status: number; body: unknown }
  /** An HTTP failure; `body` is the raw response text. */
  | { kind: "http"; status: number; body: string }
  | { kind: "network"; message: string };

export interface Markers {
  status?: number;
  /** Fail with this status the first time this exact body runs; run normally after (see docs/emulator-faults.md). */
  failOnce?: number;
  /** Fail with 401 quoting the emulator's key, as OpenAI's "Incorrect API key provided" does. */
  echoKey: boolean;
  /** Pad the successful answer's body with this many bytes (an oversized result line). */
  oversize?: number;
  latencyMs?: number;
  drop: boolean;
  duplicate: boolean;
  malformed: boolean;
}

/**
 * Reads `[[status:NNN]]`, `[[fail-once]]` / `[[fail-once:NNN]]`, `[[echo-key]]`, `[[oversize:BYTES]]`,
 * `[[latency:MS]]`, `[[drop]]`, `[[duplicate]]`, `[[malformed]]` anywhere in the body.
 */
export function readMarkers(bodyText: string): Markers {
  const status = /\[\[status:(\d{3})\]\]/.exec(bodyText);
  const failOnce = /\[\[fail-once(?::(\d{3}))?\]\]/.exec(bodyText);
  const latency = /\[\[latency:(\d+)\]\]/.exec(bodyText);
  const oversize = /\[\[oversize:(\d+)\]\]/.exec(bodyText);
  return {
    ...(oversize ? { oversize: Number(oversize[1]) } : {}),
    ...(status ? { status: Number(status[1]) } : {}),
    ...(failOnce ? { failOnce: Number(failOnce[1] ?? 500) } : {}),
    echoKey: bodyText.includes("[[echo-key]]"),
    ...(latency ? { latencyMs: Number(latency[1]) } : {}),
    drop: bodyText.includes("[[drop]]"),
    duplicate: bodyText.includes("[[duplicate]]"),
    malformed: bodyText.includes("[[malformed]]"),
  };
}

/** An OpenAI-style error body, as text (the way an upstream would have sent it). */
export function errorBody(status: number, message: string): string {
  return JSON.stringify({ error: openaiError(status, message) });
}

type Json = Record<string, unknown>;

function hash(text: string): string {
  return createHash("sha1").update(text).digest("hex");
}

function partsText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) =>
        p && typeof p === "object" && typeof (p as Json).text === "string" ? ((p as Json).text as string) : "",
      )
      .filter(Boolean)
      .join("\n");
  }
  return "";
}

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as Json | undefined;
    if (m && typeof m === "object" && (m.role === "user" || m.role === undefined)) return partsText(m.content);
  }
  return "";
}

function tokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** A request body's input tokens, as the enqueued-token limit counts them (the prompt the usage reports). */
export function inputTokens(body: Json): number {
  return tokens(JSON.stringify(body.messages ?? body.input ?? body.prompt ?? ""));
}

const TOOL = /\[\[tool:([A-Za-z0-9_.-]+)\]\]/;

function chat(body: Json, created: number, key: string): Json {
  const prompt = lastUserText(body.messages);
  const promptTokens = tokens(JSON.stringify(body.messages ?? ""));
  const tool = Array.isArray(body.tools) && body.tools.length > 0 ? TOOL.exec(prompt) : null;
  const content = `echo: ${prompt}`;
  const message = tool
    ? {
        role: "assistant",
        content: null,
        refusal: null,
        tool_calls: [
          {
            id: `call_${key.slice(0, 24)}`,
            type: "function",
            function: { name: tool[1], arguments: JSON.stringify({ prompt }) },
          },
        ],
      }
    : { role: "assistant", content, refusal: null };
  const completionTokens = tool ? 8 : tokens(content);
  return {
    id: `chatcmpl-${key.slice(0, 29)}`,
    object: "chat.completion",
    created,
    model: body.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: tool ? "tool_calls" : "stop" }],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
    system_fingerprint: "autobatch-emulator",
  };
}

function completion(body: Json, created: number, key: string): Json {
  const prompt = Array.isArray(body.prompt) ? String(body.prompt[0] ?? "") : String(body.prompt ?? "");
  const text = `echo: ${prompt}`;
  const p = tokens(prompt);
  const c = tokens(text);
  return {
    id: `cmpl-${key.slice(0, 29)}`,
    object: "text_completion",
    created,
    model: body.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: "stop" }],
    usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c },
  };
}

function vector(text: string, dimensions: number): number[] {
  // Expand a hash of the text into `dimensions` floats in [-1, 1), then normalise like real embeddings.
  const out: number[] = [];
  let block = "";
  for (let i = 0; out.length < dimensions; i++) {
    block = hash(`${i}:${text}`);
    for (let j = 0; j + 8 <= block.length && out.length < dimensions; j += 8) {
      out.push(parseInt(block.slice(j, j + 8), 16) / 0x80000000 - 1);
    }
  }
  const norm = Math.hypot(...out) || 1;
  return out.map((x) => Math.fround(x / norm));
}

function embeddings(body: Json): Json {
  const raw = body.input;
  const inputs: unknown[] = Array.isArray(raw) && raw.length > 0 && typeof raw[0] !== "number" ? raw : [raw];
  const dims = typeof body.dimensions === "number" && body.dimensions > 0 ? Math.min(body.dimensions, 4096) : 8;
  let promptTokens = 0;
  const data = inputs.map((input, index) => {
    const text = typeof input === "string" ? input : JSON.stringify(input);
    promptTokens += typeof input === "string" ? tokens(input) : Array.isArray(input) ? input.length : 1;
    const v = vector(text, dims);
    const embedding =
      body.encoding_format === "base64" ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v;
    return { object: "embedding", index, embedding };
  });
  return {
    object: "list",
    data,
    model: body.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

function responseInputText(input: unknown): string {
  if (typeof input === "string") return input;
  if (!Array.isArray(input)) return "";
  for (let i = input.length - 1; i >= 0; i--) {
    const item = input[i] as Json | undefined;
    if (item && typeof item === "object" && (item.role === "user" || item.type === "input_text")) {
      return typeof item.text === "string" ? item.text : partsText(item.content);
    }
  }
  return "";
}

function response(body: Json, created: number, key: string): Json {
  const prompt = responseInputText(body.input);
  const tool = Array.isArray(body.tools) && body.tools.length > 0 ? TOOL.exec(prompt) : null;
  const text = `echo: ${prompt}`;
  const output = tool
    ? [
        {
          type: "function_call",
          id: `fc_${key.slice(0, 24)}`,
          call_id: `call_${key.slice(0, 24)}`,
          name: tool[1],
          arguments: JSON.stringify({ prompt }),
          status: "completed",
        },
      ]
    : [
        {
          type: "message",
          id: `msg_${key.slice(0, 24)}`,
          status: "completed",
          role: "assistant",
          content: [{ type: "output_text", text, annotations: [] }],
        },
      ];
  const inputTokens = tokens(JSON.stringify(body.input ?? ""));
  const outputTokens = tool ? 8 : tokens(text);
  return {
    id: `resp_${key.slice(0, 32)}`,
    object: "response",
    created_at: created,
    status: "completed",
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    temperature: body.temperature ?? 1,
    tool_choice: body.tool_choice ?? "auto",
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    metadata: body.metadata ?? {},
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + outputTokens,
    },
  };
}

function messages(body: Json, key: string): Json {
  const prompt = lastUserText(body.messages);
  const text = `echo: ${prompt}`;
  return {
    id: `msg_${key.slice(0, 24)}`,
    type: "message",
    role: "assistant",
    model: body.model,
    content: [{ type: "text", text }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: tokens(JSON.stringify(body.messages ?? "")), output_tokens: tokens(text) },
  };
}

/** Answers one line with the built-in model. */
export function builtinModel(url: string, body: Json, bodyText: string, created: number): Outcome {
  const key = hash(bodyText);
  switch (url) {
    case "/v1/chat/completions":
      return { kind: "ok", status: 200, body: chat(body, created, key) };
    case "/v1/completions":
      return { kind: "ok", status: 200, body: completion(body, created, key) };
    case "/v1/embeddings":
      return { kind: "ok", status: 200, body: embeddings(body) };
    case "/v1/responses":
      return { kind: "ok", status: 200, body: response(body, created, key) };
    case "/v1/messages":
      return { kind: "ok", status: 200, body: messages(body, key) };
    default:
      return {
        kind: "http",
        status: 404,
        body: errorBody(404, `The emulator's built-in model does not implement ${url}`),
      };
  }
}
