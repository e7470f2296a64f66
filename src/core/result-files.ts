// A batch's two result files and where it stands in each: how far to read while it runs, how to drain them once it
// is terminal, resuming after a cut. Owned by one Batch (private to it); every cursor move is reported to it.
import { APIError } from "../errors.js";
import type { BatchCounts } from "../events.js";
import type { Transport } from "../internal/transport.js";
import type { ResultFile } from "./recorder.js";
import { readNewLines, type FileCursor, type ReadStats } from "./results.js";

/** Passes over a terminal batch's files while the server still says X-Incomplete: true. */
const MAX_DRAIN_PASSES = 5;
/** Re-reads within one poll after a stream cut mid-file, each resuming at the cursor. */
const MAX_RESUMES = 3;

export interface ResultFilesContext {
  transport: Transport;
  reads: ReadStats;
  onLine: (line: string) => void;
  /** A cursor moved (the owner records it). */
  moved: (file: ResultFile, next: number) => void;
}

export class ResultFiles {
  readonly #ctx: ResultFilesContext;
  #output: FileCursor | undefined;
  #error: FileCursor | undefined;

  constructor(ctx: ResultFilesContext) {
    this.#ctx = ctx;
  }

  get output(): FileCursor | undefined {
    return this.#output;
  }
  get error(): FileCursor | undefined {
    return this.#error;
  }

  /** Cursors recorded by an earlier process (a resumed batch). */
  restore(output: FileCursor | undefined, error: FileCursor | undefined): void {
    this.#output = output && { ...output };
    this.#error = error && { ...error };
  }

  /** Takes in a file id from the batch object; a new id starts its cursor at 0. Returns true when it changed. */
  track(file: ResultFile, fileId: string | undefined): boolean {
    if (!fileId || this.#get(file)?.fileId === fileId) return false;
    this.#set(file, { fileId, next: 0 });
    return true;
  }

  /** While running, reads only files the counts say have grown (Doubleword appends in completion order). */
  async readRunning(counts: BatchCounts, signal: AbortSignal): Promise<void> {
    if (this.#output && this.#output.next < counts.completed) await this.#read("output", false, signal);
    if (this.#error && this.#error.next < counts.failed) await this.#read("error", false, signal);
  }

  /** Reads both files to their end while `wanted()` (calls still waiting). Throws when a file cannot be read. */
  async drain(wanted: () => boolean, signal: AbortSignal): Promise<void> {
    for (const file of ["output", "error"] as const) {
      if (!this.#get(file)) continue;
      for (let pass = 0; pass < MAX_DRAIN_PASSES && wanted(); pass++) {
        if (!(await this.#read(file, true, signal))) break;
      }
    }
  }

  /** Moves both cursors back to the start. Returns false when there was nothing read to go back over. */
  rewind(): boolean {
    if (!this.#output?.next && !this.#error?.next) return false;
    for (const file of ["output", "error"] as const) {
      const cursor = this.#get(file);
      if (cursor?.next) this.#move(file, cursor, 0);
    }
    return true;
  }

  /**
   * Reads new lines, resuming at the cursor after a cut. Returns whether the server says more may follow. While
   * running, a failure just waits for the next tick (older servers 404 a file with no lines yet); once terminal,
   * it throws after the resumes are spent.
   */
  async #read(file: ResultFile, terminal: boolean, signal: AbortSignal): Promise<boolean> {
    const { transport, onLine, reads } = this.#ctx;
    for (let attempt = 0; ; attempt++) {
      const cursor = this.#get(file)!;
      let failure: unknown;
      try {
        const out = await readNewLines(transport, cursor, onLine, reads, signal);
        this.#move(file, cursor, out.next);
        if (!out.cut) return out.incomplete === true && (out.lines > 0 || !terminal);
        failure = out.cut;
      } catch (err) {
        if (signal.aborted || (!terminal && err instanceof APIError && err.status !== undefined)) return false;
        failure = err;
      }
      if (signal.aborted) return false;
      if (attempt >= MAX_RESUMES) {
        if (terminal) throw failure;
        return false;
      }
    }
  }

  #move(file: ResultFile, cursor: FileCursor, next: number): void {
    if (cursor.next === next || this.#get(file) !== cursor) return;
    this.#set(file, { fileId: cursor.fileId, next });
    this.#ctx.moved(file, next);
  }

  #get(file: ResultFile): FileCursor | undefined {
    return file === "output" ? this.#output : this.#error;
  }

  #set(file: ResultFile, cursor: FileCursor): void {
    if (file === "output") this.#output = cursor;
    else this.#error = cursor;
  }
}
