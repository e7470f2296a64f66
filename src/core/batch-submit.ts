// One batch's submission: upload → create (the requests themselves are in submit.ts), a resumed batch found again
// upstream, and the best-effort cancel upstream; with what only submission sets: the file until it is uploaded, the
// file's id, the batch's id and when it was created, and whether close left its creation in doubt.
// Owned by one Batch, private to it; it reads the batch's parts and reports every change to it through the hooks.
import type { Call, SettleSink } from "./call.js";
import type { BatchCalls } from "./batch-calls.js";
import type { BatchSettings } from "./batch.js";
import type { BatchPoll } from "./batch-poll.js";
import { fileOf } from "./buffer.js";
import type { Endpoint } from "../internal/endpoints.js";
import { APIConnectionError, AutoBatchError } from "../errors.js";
import type { BatchEnvelope } from "../internal/schemas.js";
import {
  cancelBatch,
  createBatch,
  CreateFailed,
  lookupBatch,
  submitError,
  uploadFile,
  type SubmitContext,
} from "./submit.js";

/** What a submission needs of its batch: the engine's shared pieces, the parts the batch owns, and hooks back to it. */
export interface BatchSubmitHooks extends SubmitContext {
  settings: BatchSettings;
  sink: SettleSink;
  key: string;
  endpoint: Endpoint;
  model: string;
  calls: BatchCalls;
  poll: BatchPoll;
  warn(message: string): void;
  /** The upload waits for it (see BatchRecorder.intent): the custom_ids of lines whose request runs elsewhere. */
  intent(): Promise<ReadonlySet<string> | undefined> | undefined;
  /** The waiting calls of the lines taken out of the file, before upload: no longer the batch's. */
  withdrawn(calls: Call[]): void;
  /** The calls whose lines stay in the file once some were taken out: theirs are the results still to be read. */
  kept(calls: Call[]): void;
  /** The file was uploaded: its id is set. */
  uploaded(): void;
  /** The batch exists upstream: its id, its file's id and when it was created are set. */
  submitted(): void;
  /** Upload or create failed for good, or no line was left to upload. */
  failed(reason: Error): void;
}

export class BatchSubmit {
  readonly #hooks: BatchSubmitHooks;
  /** The JSONL file until it is uploaded. */
  #parts: Buffer[] | undefined;
  #bytes: number;
  #inputFileId: string | undefined;
  #id: string | undefined;
  #createdAt = 0;
  /** Its submission was stopped by close while creating: the provider may have made it. */
  #inDoubt = false;
  /** Aborted when every caller left before the batch was created: its upload/create retries stop. */
  readonly #nobodyWaits = new AbortController();

  constructor(parts: Buffer[], bytes: number, hooks: BatchSubmitHooks) {
    this.#parts = parts;
    this.#bytes = bytes;
    this.#hooks = hooks;
  }

  /** A batch recorded by an earlier process: its file is not held here any more. */
  restore(id: string | undefined, inputFileId: string | undefined, createdAt: number): void {
    this.#parts = undefined;
    this.#id = id;
    this.#inputFileId = inputFileId;
    this.#createdAt = createdAt;
  }

  get id(): string | undefined {
    return this.#id;
  }
  get bytes(): number {
    return this.#bytes;
  }
  get inDoubt(): boolean {
    return this.#inDoubt;
  }
  get inputFileId(): string | undefined {
    return this.#inputFileId;
  }
  get createdAt(): number {
    return this.#createdAt;
  }

  /** Every caller left: before the batch is created, its upload/create retries stop. */
  nobodyWaits(): void {
    if (!this.#id) this.#nobodyWaits.abort();
  }

  /**
   * A resumed batch whose creation was never recorded: finds it upstream by its key, else creates it from its
   * uploaded file. Returns false when neither exists (nothing was billed; the batch is ended).
   */
  async reattach(stop: AbortSignal): Promise<boolean> {
    const { key, endpoint, settings } = this.#hooks;
    try {
      const found = await lookupBatch(this.#hooks, key, stop);
      const upstreamFile = found?.input_file_id;
      const fileId = typeof upstreamFile === "string" ? upstreamFile : this.#inputFileId;
      if (found) this.#created(found, fileId ?? "");
      else if (fileId) this.#created(await createBatch(this.#hooks, key, endpoint, fileId, settings, stop), fileId);
      else {
        await this.#hooks.poll.gone("it was never created upstream");
        return false;
      }
      return true;
    } catch (failure) {
      const err = failure instanceof CreateFailed ? failure.reason : failure;
      this.#hooks.warn(`could not resume batch ${key} (will try again later): ${(err as Error).message}`);
      return false;
    }
  }

  /** Uploads the file and creates the batch. On failure every call is rejected with the reason. */
  async submit(stop: AbortSignal): Promise<boolean> {
    const { key, endpoint, model, settings, calls } = this.#hooks;
    const signal = AbortSignal.any([stop, this.#nobodyWaits.signal]);
    let creating = false;
    try {
      let inputFileId: string;
      try {
        const taken = await this.#hooks.intent();
        if (taken?.size && !this.#withdraw(taken)) return false;
        inputFileId = await uploadFile(this.#hooks, key, this.#parts ?? [], this.#bytes, signal, this.#hooks.warn);
      } finally {
        // Kept for retries until here; each call keeps a view of its own line while it may be sent again.
        this.#parts = undefined;
      }
      this.#inputFileId = inputFileId;
      this.#hooks.uploaded();
      creating = true;
      const created = await createBatch(this.#hooks, key, endpoint, inputFileId, settings, signal);
      this.#created(created, inputFileId);
      return true;
    } catch (failure) {
      const err = failure instanceof CreateFailed ? failure.reason : failure;
      const reason = err instanceof AutoBatchError ? err : new APIConnectionError(String(err));
      this.#hooks.failed(reason);
      await calls.rejectWaiting((c) => submitError(reason, c.customId));
      // Once every call is rejected, as it says; the engine stops counting the batch as submitting in the same turn.
      this.#hooks.sink.events.emit("batchSubmitFailed", {
        endpoint,
        model,
        calls: calls.size,
        message: reason.message,
      });
      // The provider may have made the batch all the same (every caller left while the create was in flight, or it
      // could not be looked up): find it and cancel it, so nobody pays for it.
      const maybe = failure instanceof CreateFailed && failure.maybeCreated;
      if (creating && (maybe || this.#nobodyWaits.signal.aborted) && !stop.aborted) void this.cancelUpstream(stop);
      // Closed while the create was in flight or in doubt: the engine decides whether to look for it and cancel it.
      this.#inDoubt = creating && stop.aborted;
      return false;
    }
  }

  /**
   * Takes the lines `taken` out of the file before upload (see BatchRecorder.intent), and with them the lines of calls
   * released meanwhile; false when no line is left (nothing is uploaded, the batch ends).
   */
  #withdraw(taken: ReadonlySet<string>): boolean {
    const { calls } = this.#hooks;
    const gone = calls.withdraw(taken);
    const rest = [...calls.all()].filter((c) => !c.settled);
    this.#hooks.kept(rest);
    this.#parts = rest.length ? [fileOf(rest)] : [];
    this.#bytes = this.#parts[0]?.length ?? 0;
    this.#hooks.withdrawn(gone);
    if (rest.length === 0) this.#hooks.failed(new Error("every line runs elsewhere"));
    return rest.length > 0;
  }

  #created(created: BatchEnvelope, inputFileId: string): void {
    const { clock, settings, calls } = this.#hooks;
    this.#id = created.id;
    this.#inputFileId = inputFileId;
    this.#createdAt = clock.Date.now();
    const { deadlineMs } = settings;
    calls.created(created.id, deadlineMs === undefined ? undefined : this.#createdAt + deadlineMs);
    this.#hooks.submitted();
    this.#hooks.poll.apply(created);
    this.#hooks.sink.events.emit("batchSubmitted", {
      batchId: created.id,
      inputFileId,
      endpoint: this.#hooks.endpoint,
      model: this.#hooks.model,
      calls: calls.size,
      bytes: this.#bytes,
    });
  }

  /**
   * Best effort, so nobody pays for results nobody waits for: cancels the batch upstream (found by its key if its
   * creation's answer never arrived). A failure leaves it to finish upstream; its callers are already released.
   */
  async cancelUpstream(signal?: AbortSignal): Promise<void> {
    const { transport, key } = this.#hooks;
    try {
      const find = () => lookupBatch(this.#hooks, key, signal);
      const id = this.#id ?? (await transport.withRetry({ method: "GET", path: "/batches", signal }, find))?.id;
      if (id) await cancelBatch(transport, id, signal);
    } catch (err) {
      this.#hooks.warn(`could not cancel batch upstream: ${(err as Error).message}`);
    }
  }
}
