// Batch lifecycle and the single line scheduler: validation → lines executed `concurrency` at
// a time, round-robin across batches → results appended in completion order → terminal state.
import { TERMINAL_STATUSES } from "../internal/schemas.js";
import { setTimeout as sleep } from "node:timers/promises";
import { createHash } from "node:crypto";
import { builtinModel, errorBody, inputTokens, readMarkers, type Markers, type Outcome } from "./model.js";
import { EmulatorHttpError } from "./reply.js";
import { newLineId, type BatchRecord, type Store } from "./store.js";
import type { Upstream } from "./upstream.js";
import { validateOpenAiLines } from "./validate.js";
import type { EmulatorCounters, Flavor } from "./types.js";

/** Statuses whose input tokens count against the enqueued-token limit. */
const UNFINISHED = new Set(["in_progress", "finalizing"]);

export interface RunnerContext {
  flavor: Flavor;
  store: Store;
  counters: EmulatorCounters;
  concurrency: number;
  validationMs: number;
  maxLines: number;
  /** OpenAI flavor: input tokens all unfinished batches of one model may hold; undefined = no limit. */
  enqueuedTokenLimit?: number;
  /** The key clients must send, quoted back by `[[echo-key]]` lines. */
  apiKey?: string;
  now: () => number;
  latency: () => number;
  upstream?: Upstream;
}

interface LineRequest {
  custom_id: string;
  url: string;
  body: Record<string, unknown>;
}

export class Runner {
  readonly #ctx: RunnerContext;
  #active = 0;
  /** Batches with lines left to start; rotated so batches share the workers. */
  #queue: BatchRecord[] = [];
  #validation = new Map<string, NodeJS.Timeout>();
  #running = new Set<Promise<void>>();
  /** Digests of `[[fail-once]]` bodies that already failed once: their next run succeeds. */
  #failedOnce = new Set<string>();
  #closed = false;

  constructor(ctx: RunnerContext) {
    this.#ctx = ctx;
  }

  #nowSec(): number {
    return Math.floor(this.#ctx.now() / 1000);
  }

  /** Starts validation; the batch leaves `validating` after `validationMs`. */
  submit(b: BatchRecord): void {
    const timer = setTimeout(() => {
      this.#validation.delete(b.id);
      this.#start(b);
    }, this.#ctx.validationMs);
    this.#validation.set(b.id, timer);
  }

  #stopValidation(b: BatchRecord): void {
    const timer = this.#validation.get(b.id);
    if (timer) clearTimeout(timer);
    this.#validation.delete(b.id);
  }

  #start(b: BatchRecord): void {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      // Populating a batch whose input file was deleted fails (docs/protocols.md §7).
      if (b.inputFileId === "") {
        b.failedAt = now;
        b.active = false;
        return;
      }
    } else {
      if (this.checkExpiry(b)) return;
      const { errors, model, customIds } = validateOpenAiLines(b.lines, b.endpoint, this.#ctx.maxLines);
      if (errors.length) {
        b.status = "failed";
        b.errors = errors;
        b.failedAt = now;
        b.active = false;
        return;
      }
      b.model = model;
      b.customIds = customIds;
      b.total = b.lines.length;
      if (this.#overTokenLimit(b)) return;
      b.status = "in_progress";
    }
    b.started = true;
    b.inProgressAt = now;
    this.#queue.push(b);
    this.#pump();
  }

  /**
   * OpenAI's enqueued-token limit: a batch whose input tokens, with those of the model's unfinished batches, exceed
   * the limit fails after validation with `token_limit_exceeded` (the create itself succeeded).
   */
  #overTokenLimit(b: BatchRecord): boolean {
    const limit = this.#ctx.enqueuedTokenLimit;
    if (limit === undefined) return false;
    b.enqueuedTokens = b.lines.reduce((n, line) => n + inputTokens((JSON.parse(line) as LineRequest).body), 0);
    let enqueued = 0;
    for (const other of this.#ctx.store.batches.values()) {
      if (other !== b && other.active && other.model === b.model && UNFINISHED.has(other.status))
        enqueued += other.enqueuedTokens;
    }
    if (enqueued + b.enqueuedTokens <= limit) return false;
    b.status = "failed";
    b.errors = [
      {
        code: "token_limit_exceeded",
        param: null,
        line: null,
        message: `Enqueued token limit reached for ${b.model} in organization org-emulator. Limit: ${limit.toLocaleString("en-US")} enqueued tokens. Please try again once some in_progress batches have been completed.`,
      },
    ];
    b.failedAt = this.#nowSec();
    b.active = false;
    return true;
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#ctx.concurrency && this.#queue.length) {
      const b = this.#queue.shift()!;
      if (b.stopped || b.next >= b.lines.length) continue;
      if (this.checkExpiry(b)) continue;
      const idx = b.next++;
      if (b.next < b.lines.length) this.#queue.push(b);
      this.#launch(b, idx);
    }
  }

  #launch(b: BatchRecord, idx: number): void {
    this.#active++;
    b.inFlight.add(idx);
    const p: Promise<void> = this.#runLine(b, idx)
      .catch(() => {
        // Aborted (cancel, expiry, close): the line leaves no result.
      })
      .finally(() => {
        this.#active--;
        b.inFlight.delete(idx);
        this.#running.delete(p);
        this.settle(b);
        this.#pump();
      });
    this.#running.add(p);
  }

  async #runLine(b: BatchRecord, idx: number): Promise<void> {
    const req = JSON.parse(b.lines[idx]) as LineRequest;
    const bodyText = JSON.stringify(req.body);
    const markers = readMarkers(bodyText);
    const signal = b.abort.signal;
    const delay = markers.latencyMs ?? this.#ctx.latency();
    if (delay > 0) await sleep(delay, undefined, { signal });
    if (signal.aborted) return;
    let outcome: Outcome;
    const failNow = markers.failOnce !== undefined && this.#firstRun(bodyText);
    if (failNow) {
      outcome = {
        kind: "http",
        status: markers.failOnce!,
        body: errorBody(markers.failOnce!, `Emulated first-attempt failure (HTTP ${markers.failOnce})`),
      };
    } else if (markers.echoKey) {
      outcome = {
        kind: "http",
        status: 401,
        body: errorBody(
          401,
          `Incorrect API key provided: ${this.#ctx.apiKey ?? "(none)"}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        ),
      };
    } else if (markers.status !== undefined && (markers.status < 200 || markers.status >= 300)) {
      outcome = {
        kind: "http",
        status: markers.status,
        body: errorBody(markers.status, `Emulated failure (HTTP ${markers.status})`),
      };
    } else if (this.#ctx.upstream) {
      outcome = await this.#ctx.upstream.execute(req.url, bodyText, signal);
    } else {
      outcome = builtinModel(req.url, req.body, bodyText, this.#nowSec());
    }
    if (outcome.kind === "ok" && markers.oversize !== undefined && typeof outcome.body === "object")
      outcome = { ...outcome, body: { ...outcome.body, emulator_padding: "x".repeat(markers.oversize) } };
    // Cancelled (Doubleword) or expired (OpenAI) meanwhile: the line counts elsewhere and writes nothing.
    if (signal.aborted) return;
    this.#record(b, req.custom_id, outcome, markers);
  }

  /** True the first time this exact body runs (it is remembered until the emulator closes). */
  #firstRun(bodyText: string): boolean {
    const digest = createHash("sha256").update(bodyText).digest("base64url");
    if (this.#failedOnce.has(digest)) return false;
    this.#failedOnce.add(digest);
    return true;
  }

  #record(b: BatchRecord, customId: string, outcome: Outcome, markers: Markers): void {
    this.#ctx.counters.linesExecuted++;
    const ok = outcome.kind === "ok";
    if (ok || markers.drop) b.completed++;
    else b.failed++;
    if (outcome.kind === "ok") this.#addUsage(b, outcome.body);
    if (markers.drop) return;
    const line = JSON.stringify(this.#resultLine(customId, outcome));
    // Truncated right after the custom_id: invalid JSON that still names the line.
    const text = markers.malformed
      ? line.slice(0, line.indexOf(JSON.stringify(customId)) + JSON.stringify(customId).length + 3)
      : line;
    const fileId = ok ? b.outputFileId : b.errorFileId;
    for (let i = markers.duplicate ? 2 : 1; i > 0; i--) this.#ctx.store.appendLine(fileId, customId, text);
  }

  #resultLine(customId: string, outcome: Outcome): Record<string, unknown> {
    const openai = this.#ctx.flavor === "openai";
    const id = newLineId(this.#ctx.flavor);
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

  #addUsage(b: BatchRecord, body: unknown): void {
    const usage = (body as { usage?: Record<string, unknown> } | null)?.usage;
    if (!usage || typeof usage !== "object") return;
    const input = usage.prompt_tokens ?? usage.input_tokens;
    const output = usage.completion_tokens ?? usage.output_tokens;
    if (typeof input === "number") b.usage.input += input;
    if (typeof output === "number") b.usage.output += output;
  }

  /** Moves a batch to its terminal state once no work is left. */
  settle(b: BatchRecord): void {
    if (!b.started) return;
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      if (!b.active || b.cancellingAt !== undefined || b.completed + b.failed + b.cancelled < b.total) return;
      b.finalizingAt = now;
      if (b.completed > 0) b.completedAt = now;
      else b.failedAt = now;
      b.active = false;
      return;
    }
    if (b.status === "in_progress" && b.completed + b.failed === b.total) {
      b.finalizingAt = now;
      b.completedAt = now;
      this.#finishOpenAi(b, "completed");
    } else if (b.status === "cancelling" && b.inFlight.size === 0) {
      b.cancelled = b.total - b.completed - b.failed;
      b.cancelledAt = now;
      this.#finishOpenAi(b, "cancelled");
    }
  }

  #finishOpenAi(b: BatchRecord, status: "completed" | "cancelled" | "expired"): void {
    b.status = status;
    b.active = false;
    const output = this.#ctx.store.files.get(b.outputFileId);
    const error = this.#ctx.store.files.get(b.errorFileId);
    if (output) output.hidden = b.completed === 0;
    if (error) error.hidden = b.failed === 0;
  }

  /**
   * Doubleword (docs/protocols.md §7): idempotent; a finished batch turns `cancelled`, one still validating stays
   * `cancelling` forever, otherwise every unfinished line is cancelled at once and writes nothing.
   * OpenAI: `cancelling` until in-flight lines finish; call `settle` after rendering the answer.
   */
  cancel(b: BatchRecord): void {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      if (b.cancellingAt !== undefined) return;
      b.cancellingAt = b.cancelledAt = now;
      this.#stopValidation(b);
      if (b.started && b.active) b.cancelled = b.total - b.completed - b.failed;
      b.stopped = true;
      b.active = false;
      b.abort.abort();
      return;
    }
    if (TERMINAL_STATUSES.has(b.status)) {
      throw new EmulatorHttpError(400, `Cannot cancel a batch with status '${b.status}'.`, {
        code: "batch_not_cancellable",
      });
    }
    if (b.status === "cancelling") return;
    b.status = "cancelling";
    b.cancellingAt = now;
    b.stopped = true;
    if (!b.started) {
      this.#stopValidation(b);
      // Nothing ran: settle() needs `started` to finish the cancel.
      b.started = true;
    }
  }

  /** OpenAI: expires the batch when its window has passed; returns whether it is (now) expired. */
  checkExpiry(b: BatchRecord): boolean {
    if (this.#ctx.flavor !== "openai") return false;
    if (b.status === "expired") return true;
    if (this.#ctx.now() < b.expiresAt * 1000) return false;
    return this.expire(b);
  }

  /** Forces the completion window to pass now; returns whether the batch became `expired`. */
  expire(b: BatchRecord): boolean {
    const now = this.#nowSec();
    if (this.#ctx.flavor === "doubleword") {
      // Doubleword never expires a batch; it only reports expired_at once the deadline is past.
      b.expiresAt = Math.min(b.expiresAt, now - 1);
      return false;
    }
    if (b.status !== "validating" && b.status !== "in_progress") return false;
    this.#stopValidation(b);
    b.stopped = true;
    b.abort.abort();
    if (b.started) {
      const unfinished = [...b.inFlight].sort((x, y) => x - y);
      for (let i = b.next; i < b.lines.length; i++) unfinished.push(i);
      for (const idx of unfinished) {
        const customId = b.customIds[idx];
        const line = {
          id: newLineId("openai"),
          custom_id: customId,
          response: null,
          error: {
            code: "batch_expired",
            message: "This request could not be executed before the completion window expired.",
          },
        };
        this.#ctx.store.appendLine(b.errorFileId, customId, JSON.stringify(line));
        b.failed++;
      }
      b.next = b.lines.length;
    }
    b.expiredAt = now;
    this.#finishOpenAi(b, "expired");
    return true;
  }

  /** Stops timers and in-flight lines; resolves when every line has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#validation.values()) clearTimeout(timer);
    this.#validation.clear();
    this.#queue = [];
    for (const b of this.#ctx.store.batches.values()) b.abort.abort();
    await Promise.allSettled([...this.#running]);
  }
}
