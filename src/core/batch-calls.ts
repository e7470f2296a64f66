// The calls of one batch by custom_id, and how each leaves it: settled exactly once (from its result line, when the
// batch ends, or released by its caller), or handed on to a later batch (a transient line failure, the token limit).
// Owned by one Batch, private to it; every change is reported to it through the hooks.
import { settle, type Call, type SettleSink } from "./call.js";
import type { AutoBatchError } from "../errors.js";
import { ResultParseError } from "../errors.js";
import { lineOutcome, parseLine, type LineContext } from "./line-result.js";
import type { ResultFile } from "./recorder.js";
import type { ResultLine } from "../internal/schemas.js";
import { rejectInSlices } from "./reject-slices.js";

export interface BatchCallsHooks {
  sink: SettleSink;
  /** The batch as a line outcome needs it, now. */
  line(): LineContext;
  quote(text: string): string;
  warn(message: string): void;
  settled(customId: string, ok: boolean): void;
  left(customId: string): void;
  /** A file handed over a line for a call already done with here: its lines moved. */
  repeated(file: ResultFile): void;
  /**
   * Every readable result line, verbatim, before its call (if any) settles: the batch records it. Returns whether
   * the batch knows the custom_id without a call (a resumed batch's line), so it is not reported as unknown.
   */
  read(customId: string, raw: string, line: ResultLine): boolean;
}

export class BatchCalls {
  readonly #calls = new Map<string, Call>();
  /** Calls handed on to a later batch: their lines here are ignored. */
  readonly #left = new Set<string>();
  readonly #hooks: BatchCallsHooks;
  #size: number;
  #unsettled: number;
  /** The pass rejecting every waiting call, once one started: the first reason wins, as when it was synchronous. */
  #rejecting: Promise<void> | undefined;
  #succeeded = 0;
  #failed = 0;

  constructor(calls: Call[], owner: { release(call: Call, reason: unknown): void }, hooks: BatchCallsHooks) {
    this.#hooks = hooks;
    for (const c of calls) {
      this.#calls.set(c.customId, c);
      c.owner = owner;
    }
    this.#unsettled = this.#size = calls.length;
  }

  /** Lines of the batch's file. */
  get size(): number {
    return this.#size;
  }

  /** Calls still waiting here. */
  get unsettled(): number {
    return this.#unsettled;
  }
  get succeeded(): number {
    return this.#succeeded;
  }
  get failed(): number {
    return this.#failed;
  }
  /** Calls handed on to a later batch. */
  get left(): number {
    return this.#left.size;
  }

  /** The batch exists upstream: each call learns its id, and its deadline unless an earlier batch gave it one. */
  created(batchId: string, deadlineAt: number | undefined): void {
    for (const c of this.#calls.values()) {
      c.batchId = batchId;
      if (deadlineAt !== undefined) c.deadlineAt ??= deadlineAt;
    }
  }

  /** Takes these calls out before upload (their lines run elsewhere: see BatchRecorder.intent); returns those waiting. */
  withdraw(customIds: ReadonlySet<string>): Call[] {
    const out: Call[] = [];
    for (const id of customIds) {
      const c = this.#calls.get(id);
      if (!c) continue;
      this.#calls.delete(id);
      this.#size--;
      c.owner = undefined;
      if (c.settled) continue;
      this.#unsettled--;
      out.push(c);
    }
    return out;
  }

  /** Nothing will send these lines again: their bytes may go. */
  dropLines(): void {
    for (const c of this.#calls.values()) c.chunk = undefined;
  }

  /** Every call of the batch's file still here, in order. */
  all(): IterableIterator<Call> {
    return this.#calls.values();
  }

  waiting(): Call[] {
    return [...this.#calls.values()].filter((c) => !c.settled);
  }

  /** Settles the call a result line belongs to. A duplicate line is ignored; a line for no call of ours is reported. */
  onLine(raw: string, file: ResultFile) {
    const parsed = parseLine(raw);
    if ("why" in parsed) return this.#unreadable(raw, parsed.why, parsed.customId, file);
    const customId = parsed.line.custom_id;
    const known = this.#hooks.read(customId, raw, parsed.line);
    const call = this.#calls.get(customId);
    if (!call || call.settled) {
      if (call || this.#left.has(customId)) this.#hooks.repeated(file);
      else if (!known)
        this.#hooks.warn(`result line for unknown custom_id ${JSON.stringify(customId.slice(0, 80))} ignored`);
      return;
    }
    const out = lineOutcome(call, parsed.line, this.#hooks.line());
    const { sink } = this.#hooks;
    if (!out.transient || !sink.retryable(call)) return this.settle(call, out.ok, out.value);
    // A transient failure: the line goes into a later batch.
    this.leave(call);
    sink.retry(call);
    const reason = out.value as AutoBatchError & { status?: number };
    sink.events.emit("callRetried", {
      customId,
      batchId: call.batchId!,
      retry: call.retries,
      ...(reason.status !== undefined && { status: reason.status }),
      message: reason.message,
    });
  }

  /** A line we cannot read fails only its own call, when the custom_id can still be recovered from the text. */
  #unreadable(text: string, why: string, customId: string | undefined, file: ResultFile) {
    const call = this.#calls.get(customId ?? "");
    const preview = this.#hooks.quote(text.slice(0, 200));
    if (!call) return this.#hooks.warn(`unattributable result line ${why}: ${preview}`);
    if (call.settled) return this.#hooks.repeated(file);
    const { batchId } = this.#hooks.line();
    const error = new ResultParseError(`result line for this call ${why}: ${preview}`, {
      customId: call.customId,
      batchId,
    });
    this.settle(call, false, error);
  }

  /** A waiting call leaves for a later batch; its lines here are ignored from now on. */
  leave(call: Call): void {
    this.#calls.delete(call.customId);
    this.#left.add(call.customId);
    this.#unsettled--;
    call.owner = undefined;
    this.#hooks.left(call.customId);
  }

  /**
   * Rejects every call still waiting with `reason(call)`, in slices that yield to the event loop (reject-slices.ts).
   * A second call while a pass runs joins it; after one, no call is left waiting.
   */
  rejectWaiting(reason: (call: Call) => unknown): Promise<void> {
    this.#rejecting ??= rejectInSlices(this.#calls.values(), reason, (call, error) => this.settle(call, false, error));
    return this.#rejecting;
  }

  settle(call: Call, ok: boolean, value: unknown): void {
    if (!settle(call, this.#hooks.sink, ok, value)) return;
    this.#unsettled--;
    if (ok) this.#succeeded++;
    else this.#failed++;
    this.#hooks.settled(call.customId, ok);
  }
}
