// SSE re-wrapping of finished results: shapes the SDKs' accumulators rebuild back into the same object.
import { describe, expect, it } from "vitest";
import { chatCompletionToSSE, responseToSSE } from "../../src/internal/sse.js";

/** Splits an SSE payload into `{ event, data }` messages, `[DONE]` kept as the string. */
function parse(sse: string): { event?: string; data: any }[] {
  expect(sse.endsWith("\n\n")).toBe(true);
  return sse
    .trimEnd()
    .split("\n\n")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7);
      const data = lines.find((l) => l.startsWith("data: "))!.slice(6);
      return { event, data: data === "[DONE]" ? data : JSON.parse(data) };
    });
}

const completion = (message: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "m",
  system_fingerprint: "fp",
  choices: [{ index: 0, message: { role: "assistant", ...message }, logprobs: null, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  ...extra,
});

describe("chat completion → chunks", () => {
  it("sends role, content, finish_reason, then [DONE]", () => {
    const msgs = parse(chatCompletionToSSE(completion({ content: "hi", refusal: null }), { includeUsage: false }));
    expect(msgs.at(-1)!.data).toBe("[DONE]");
    const chunks = msgs.slice(0, -1).map((m) => m.data);
    expect(
      chunks.every(
        (c) =>
          c.object === "chat.completion.chunk" &&
          c.id === "chatcmpl-1" &&
          c.system_fingerprint === "fp" &&
          !("usage" in c),
      ),
    ).toBe(true);
    expect(chunks.map((c) => c.choices[0].delta)).toEqual([
      { role: "assistant", content: "", refusal: null },
      { content: "hi" },
      {},
    ]);
    expect(chunks.map((c) => c.choices[0].finish_reason)).toEqual([null, null, "stop"]);
  });

  it("carries refusals, extra fields (reasoning) and every tool call with its index", () => {
    const message = {
      content: null,
      refusal: "no",
      reasoning_content: "thinking",
      tool_calls: [
        { id: "c1", type: "function", function: { name: "a", arguments: "{}" } },
        { id: "c2", type: "function", function: { name: "b", arguments: '{"x":1}' } },
      ],
    };
    const chunks = parse(chatCompletionToSSE(completion(message), { includeUsage: false }))
      .slice(0, -1)
      .map((m) => m.data);
    expect(chunks.map((c) => c.choices[0].delta)).toEqual([
      { role: "assistant", content: "", refusal: null },
      { reasoning_content: "thinking" },
      { refusal: "no" },
      { tool_calls: [{ index: 0, id: "c1", type: "function", function: { name: "a", arguments: "{}" } }] },
      { tool_calls: [{ index: 1, id: "c2", type: "function", function: { name: "b", arguments: '{"x":1}' } }] },
      {},
    ]);
  });

  it("adds usage: null to every chunk and a final usage chunk with empty choices when asked", () => {
    const chunks = parse(chatCompletionToSSE(completion({ content: "hi" }), { includeUsage: true }))
      .slice(0, -1)
      .map((m) => m.data);
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: 3 } });
  });

  it("puts logprobs on the content chunk and keeps each choice's index", () => {
    const logprobs = { content: [{ token: "hi", logprob: -0.1, bytes: null, top_logprobs: [] }], refusal: null };
    const c = completion({ content: "hi" });
    c.choices = [
      { index: 0, message: { role: "assistant", content: "hi" }, logprobs, finish_reason: "stop" } as never,
      { index: 1, message: { role: "assistant", content: "yo" }, logprobs: null, finish_reason: "length" } as never,
    ];
    const chunks = parse(chatCompletionToSSE(c, { includeUsage: false }))
      .slice(0, -1)
      .map((m) => m.data.choices[0]);
    expect(chunks.filter((ch) => ch.logprobs !== null)).toEqual([
      { index: 0, delta: { content: "hi" }, logprobs, finish_reason: null },
    ]);
    expect(chunks.filter((ch) => ch.finish_reason).map((ch) => [ch.index, ch.finish_reason])).toEqual([
      [0, "stop"],
      [1, "length"],
    ]);
  });
});

describe("response → Responses events", () => {
  const response = {
    id: "resp_1",
    object: "response",
    created_at: 1,
    status: "completed",
    model: "m",
    output: [
      { type: "reasoning", id: "rs_1", summary: [] },
      {
        type: "message",
        id: "msg_1",
        status: "completed",
        role: "assistant",
        content: [
          { type: "output_text", text: "a", annotations: [] },
          { type: "refusal", refusal: "no" },
        ],
      },
      { type: "function_call", id: "fc_1", call_id: "call_1", name: "f", arguments: "{}", status: "completed" },
    ],
    usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
  };

  it("numbers every event and points each one at its item, part and output index", () => {
    const events = parse(responseToSSE(response));
    expect(events.every((e) => e.event === e.data.type)).toBe(true);
    expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.map((e) => [e.data.type, e.data.output_index, e.data.content_index, e.data.item_id])).toEqual([
      ["response.created", undefined, undefined, undefined],
      ["response.in_progress", undefined, undefined, undefined],
      ["response.output_item.added", 0, undefined, undefined],
      ["response.output_item.done", 0, undefined, undefined],
      ["response.output_item.added", 1, undefined, undefined],
      ["response.content_part.added", 1, 0, "msg_1"],
      ["response.output_text.delta", 1, 0, "msg_1"],
      ["response.output_text.done", 1, 0, "msg_1"],
      ["response.content_part.done", 1, 0, "msg_1"],
      ["response.content_part.added", 1, 1, "msg_1"],
      ["response.refusal.delta", 1, 1, "msg_1"],
      ["response.refusal.done", 1, 1, "msg_1"],
      ["response.content_part.done", 1, 1, "msg_1"],
      ["response.output_item.done", 1, undefined, undefined],
      ["response.output_item.added", 2, undefined, undefined],
      ["response.function_call_arguments.delta", 2, undefined, "fc_1"],
      ["response.function_call_arguments.done", 2, undefined, "fc_1"],
      ["response.output_item.done", 2, undefined, undefined],
      ["response.completed", undefined, undefined, undefined],
    ]);
  });

  it("starts from an empty in-progress response and ends with the whole one", () => {
    const events = parse(responseToSSE(response)).map((e) => e.data);
    expect(events[0].response).toMatchObject({ id: "resp_1", status: "in_progress", output: [], usage: null });
    expect(events.at(-1)!.response).toEqual(response);
    const added = events.filter((e) => e.type === "response.output_item.added").map((e) => e.item);
    expect(added[1]).toMatchObject({ type: "message", status: "in_progress", content: [] });
    expect(added[2]).toMatchObject({ type: "function_call", status: "in_progress", arguments: "" });
  });

  it("ends with response.incomplete or response.failed as the status says, and names items that had no id", () => {
    const incomplete = {
      ...response,
      status: "incomplete",
      output: [{ type: "message", role: "assistant", content: [{ type: "output_text", text: "cut" }] }],
    };
    const events = parse(responseToSSE(incomplete)).map((e) => e.data);
    expect(events.at(-1)!.type).toBe("response.incomplete");
    const ids = new Set(events.filter((e) => e.item_id !== undefined).map((e) => e.item_id));
    expect(ids).toEqual(new Set(["item_0"]));
    expect(events.at(-1)!.response.output[0].id).toBe("item_0");
    expect(parse(responseToSSE({ ...response, status: "failed" })).at(-1)!.event).toBe("response.failed");
  });
});
