// Result lines: shaped as the flavor writes them, appended to the batch's output or error file, counted on the batch.
import type { Markers, Outcome } from "./model.js";
import { newLineId, type BatchRecord, type Store } from "./store.js";
import type { EmulatorCounters, Flavor } from "./types.js";

export interface ResultContext {
  flavor: Flavor;
  store: Store;
  counters: EmulatorCounters;
}

/** Writes one executed line's result (as its markers bend it) and counts it on the batch. */
export function recordResult(
  ctx: ResultContext,
  b: BatchRecord,
  customId: string,
  outcome: Outcome,
  markers: Markers,
): void {
  ctx.counters.linesExecuted++;
  const ok = outcome.kind === "ok";
  if (ok || markers.drop) b.completed++;
  else b.failed++;
  if (outcome.kind === "ok") addUsage(b, outcome.body);
  if (markers.drop) return;
  const line = JSON.stringify(resultLine(ctx.flavor, customId, outcome));
  // Truncated right after the custom_id: invalid JSON that still names the line.
  const text = markers.malformed
    ? line.slice(0, line.indexOf(JSON.stringify(customId)) + JSON.stringify(customId).length + 3)
    : line;
  const fileId = ok ? b.outputFileId : b.errorFileId;
  for (let i = markers.duplicate ? 2 : 1; i > 0; i--) ctx.store.appendLine(fileId, customId, text);
}

/** OpenAI: a line the completion window passed before it ran fails with `batch_expired`. */
export function recordExpired(store: Store, b: BatchRecord, customId: string): void {
  const line = {
    id: newLineId("openai"),
    custom_id: customId,
    response: null,
    error: {
      code: "batch_expired",
      message: "This request could not be executed before the completion window expired.",
    },
  };
  store.appendLine(b.errorFileId, customId, JSON.stringify(line));
  b.failed++;
}

function resultLine(flavor: Flavor, customId: string, outcome: Outcome): Record<string, unknown> {
  const openai = flavor === "openai";
  const id = newLineId(flavor);
  const requestId = openai ? `req_${id.slice(-32)}` : null;
  if (outcome.kind === "ok") {
    return {
      id,
      custom_id: customId,
      response: { status_code: outcome.status, request_id: requestId, body: outcome.body },
      error: null,
    };
  }
  if (openai) {
    if (outcome.kind === "network") {
      return {
        id,
        custom_id: customId,
        response: null,
        error: { code: "upstream_connection_error", message: outcome.message },
      };
    }
    let body: unknown = outcome.body;
    try {
      body = JSON.parse(outcome.body);
    } catch {
      // Non-JSON upstream bodies stay strings.
    }
    return {
      id,
      custom_id: customId,
      response: { status_code: outcome.status, request_id: requestId, body },
      error: null,
    };
  }
  // Doubleword: the failure reason is serialised JSON inside `message`, the upstream body a string inside that.
  const reason =
    outcome.kind === "network"
      ? { type: "NetworkError", details: { error: outcome.message } }
      : { type: "NonRetriableHttpStatus", details: { status: outcome.status, body: outcome.body } };
  return { id, custom_id: customId, response: null, error: { code: null, message: JSON.stringify(reason) } };
}

function addUsage(b: BatchRecord, body: unknown): void {
  const usage = (body as { usage?: Record<string, unknown> } | null)?.usage;
  if (!usage || typeof usage !== "object") return;
  const input = usage.prompt_tokens ?? usage.input_tokens;
  const output = usage.completion_tokens ?? usage.output_tokens;
  if (typeof input === "number") b.usage.input += input;
  if (typeof output === "number") b.usage.output += output;
}
