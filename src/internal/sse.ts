// Re-wraps a finished result as the SSE stream the provider would have sent for `stream: true`, in the shapes the
// official SDKs' iterators and accumulators (ChatCompletionStream, ResponseStream) rebuild back into the same object.
// Each piece of content goes out whole, as a single delta. Shared by serve and the batching fetch.
import type { Endpoint } from "./endpoints.js";

import { isObject } from "../internal/schemas.js";

type Json = Record<string, unknown>;

/** A request body split into what the Batch API gets (no stream fields) and how the caller wants the answer. */
export interface StreamRequest {
  params: Json;
  /** `stream: true` was asked for: answer with `resultToSSE`. */
  stream: boolean;
  /** `stream_options.include_usage` (chat only). */
  includeUsage: boolean;
}

/** The Batch API cannot stream: the stream fields come off, and the finished result is re-wrapped if asked. */
export function splitStream(body: Json): StreamRequest {
  // Most bodies do not stream: they go as they are, not copied (serve's hot path).
  if (body.stream !== true) return { params: body, stream: false, includeUsage: false };
  const { stream: _stream, stream_options: streamOptions, ...params } = body;
  return { params, stream: true, includeUsage: isObject(streamOptions) && streamOptions.include_usage === true };
}

/** A finished result as the SSE stream its endpoint would have sent. */
export function resultToSSE(endpoint: Endpoint, body: unknown, includeUsage: boolean): string {
  return endpoint === "/v1/responses" ? responseToSSE(body) : chatCompletionToSSE(body, { includeUsage });
}

/** One SSE message; `event` is set for the Responses API, which names its events. */
function frame(data: unknown, event?: string): string {
  return `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
}

export interface ChatStreamOptions {
  /** `stream_options.include_usage`: a final chunk with empty `choices` carries the usage; every other chunk has `usage: null`. */
  includeUsage: boolean;
}

/** A `chat.completion` as `chat.completion.chunk` events, ending with `data: [DONE]`. */
export function chatCompletionToSSE(completion: unknown, options: ChatStreamOptions): string {
  const c = isObject(completion) ? completion : {};
  const base: Json = { id: c.id, object: "chat.completion.chunk", created: c.created, model: c.model };
  for (const key of ["system_fingerprint", "service_tier"]) if (c[key] !== undefined) base[key] = c[key];
  const out: string[] = [];
  const chunk = (choice: Json) =>
    out.push(frame({ ...base, choices: [choice], ...(options.includeUsage && { usage: null }) }));
  const choices = Array.isArray(c.choices) ? c.choices.filter(isObject) : [];
  for (const [position, choice] of choices.entries()) {
    const index = typeof choice.index === "number" ? choice.index : position;
    // The choice's logprobs ride on the delta carrying the text they describe (or on the last chunk if none does).
    let logprobs = choice.logprobs ?? null;
    for (const delta of messageDeltas(isObject(choice.message) ? choice.message : {})) {
      const carries = logprobs !== null && ("content" in delta || "refusal" in delta) && delta.content !== "";
      chunk({ index, delta, logprobs: carries ? logprobs : null, finish_reason: null });
      if (carries) logprobs = null;
    }
    chunk({ index, delta: {}, logprobs, finish_reason: choice.finish_reason ?? "stop" });
  }
  if (options.includeUsage) out.push(frame({ ...base, choices: [], usage: c.usage ?? null }));
  out.push("data: [DONE]\n\n");
  return out.join("");
}

/**
 * The deltas that rebuild one message, in the order a live stream sends them: role first, then any extra fields
 * (e.g. `reasoning_content` of reasoning models), content, refusal, then each tool call with its `index`.
 */
function messageDeltas(message: Json): Json[] {
  const { role, content, refusal, tool_calls, function_call, audio, annotations, ...extra } = message;
  const deltas: Json[] = [{ role: role ?? "assistant", content: "", refusal: null }];
  const extras = Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== null && v !== undefined));
  if (Object.keys(extras).length) deltas.push(extras);
  if (typeof content === "string" && content !== "") {
    deltas.push({ content, ...(Array.isArray(annotations) && annotations.length && { annotations }) });
  }
  if (typeof refusal === "string" && refusal !== "") deltas.push({ refusal });
  if (isObject(audio)) deltas.push({ audio });
  if (isObject(function_call)) deltas.push({ function_call });
  if (Array.isArray(tool_calls)) {
    for (const [index, call] of tool_calls.entries())
      if (isObject(call)) deltas.push({ tool_calls: [{ index, ...call }] });
  }
  return deltas;
}

/**
 * A Response as Responses API streaming events: `response.created`, `response.in_progress`, per output item
 * `output_item.added` → (content parts / function-call arguments) → `output_item.done`, then `response.completed`
 * (or `response.incomplete` / `response.failed`, as the status says). `sequence_number` counts every event.
 */
export function responseToSSE(response: unknown): string {
  const r = isObject(response) ? response : {};
  const out: string[] = [];
  let sequence = 0;
  const emit = (type: string, fields: Json) => out.push(frame({ type, sequence_number: sequence++, ...fields }, type));
  const start = { ...r, status: "in_progress", output: [], usage: null };
  emit("response.created", { response: start });
  emit("response.in_progress", { response: start });
  const items = Array.isArray(r.output) ? r.output.filter(isObject) : [];
  const finalOutput: Json[] = [];
  for (const [outputIndex, raw] of items.entries()) {
    // Streams name every item; a provider that left `id` out still needs one for `item_id` to point at.
    const item: Json = { ...raw, id: typeof raw.id === "string" ? raw.id : `item_${outputIndex}` };
    finalOutput.push(item);
    const at = { output_index: outputIndex, item_id: item.id };
    if (item.type === "message") {
      const parts = Array.isArray(item.content) ? item.content.filter(isObject) : [];
      emit("response.output_item.added", {
        output_index: outputIndex,
        item: { ...item, status: "in_progress", content: [] },
      });
      for (const [contentIndex, part] of parts.entries()) {
        const where = { ...at, content_index: contentIndex };
        if (part.type === "output_text") {
          const text = typeof part.text === "string" ? part.text : "";
          const logprobs = Array.isArray(part.logprobs) ? part.logprobs : [];
          emit("response.content_part.added", {
            ...where,
            part: { ...part, text: "", ...(part.logprobs !== undefined && { logprobs: [] }) },
          });
          if (text) emit("response.output_text.delta", { ...where, delta: text, logprobs });
          emit("response.output_text.done", { ...where, text, logprobs });
        } else if (part.type === "refusal") {
          const refusal = typeof part.refusal === "string" ? part.refusal : "";
          emit("response.content_part.added", { ...where, part: { ...part, refusal: "" } });
          if (refusal) emit("response.refusal.delta", { ...where, delta: refusal });
          emit("response.refusal.done", { ...where, refusal });
        } else {
          emit("response.content_part.added", { ...where, part });
        }
        emit("response.content_part.done", { ...where, part });
      }
    } else if (item.type === "function_call") {
      const args = typeof item.arguments === "string" ? item.arguments : "";
      emit("response.output_item.added", {
        output_index: outputIndex,
        item: { ...item, status: "in_progress", arguments: "" },
      });
      if (args) emit("response.function_call_arguments.delta", { ...at, delta: args });
      emit("response.function_call_arguments.done", { ...at, name: item.name, arguments: args });
    } else {
      // Reasoning, tool-call and other items arrive whole: a live stream's finer events carry nothing more.
      emit("response.output_item.added", { output_index: outputIndex, item });
    }
    emit("response.output_item.done", { output_index: outputIndex, item });
  }
  const status = r.status === "incomplete" || r.status === "failed" ? r.status : "completed";
  emit(`response.${status}`, { response: { ...r, output: finalOutput } });
  return out.join("");
}
