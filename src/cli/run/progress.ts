// Progress on standard error. On a terminal: one line redrawn in place, fitted to the terminal's width (segments
// dropped by priority, the bar taking what is left). Otherwise: a plain line every `intervalMs`. Hand-written: the
// progress libraries want to own the line format and add a dependency for ~60 lines of layout.
import type { WriteStream } from "node:tty";

export interface Snapshot {
  total: number;
  succeeded: number;
  failed: number;
  /** Batches of this run by status, e.g. { in_progress: 2, completed: 1 }. */
  batches: Record<string, number>;
  tokensIn: number;
  tokensOut: number;
  /** Lines settled per second in this run; 0 until the first one. */
  rate: number;
}

/** Redraws per second on a terminal. */
const TTY_INTERVAL_MS = 100;

const fmt = (n: number) => n.toLocaleString("en-US");
const compact = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : String(Math.round(n));

function eta(s: Snapshot): string {
  const left = s.total - s.succeeded - s.failed;
  if (left <= 0) return "0s";
  if (s.rate <= 0) return "?";
  const secs = Math.ceil(left / s.rate);
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${String(secs % 60).padStart(2, "0")}s`;
  return `${Math.floor(secs / 3600)}h${String(Math.floor((secs % 3600) / 60)).padStart(2, "0")}m`;
}

function batchesText(b: Record<string, number>): string {
  const parts = Object.entries(b)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`);
  return parts.length ? `batches ${parts.join(", ")}` : "batches 0";
}

/**
 * The terminal line, at most `columns - 1` wide (the last column would wrap on some terminals). The bar's width
 * depends on the terminal alone, so it does not jump as the text changes; segments that do not fit are dropped.
 */
export function renderBar(s: Snapshot, columns: number): string {
  const width = Math.max(20, columns) - 1;
  const done = s.succeeded + s.failed;
  const counts = `${fmt(done)}/${fmt(s.total)} ok ${fmt(s.succeeded)} failed ${fmt(s.failed)}`;
  const barWidth = Math.min(40, Math.max(10, Math.floor(width / 4)));
  const room = width - barWidth - 3;
  if (counts.length > room) return counts.slice(0, width);
  const optional = [
    `${compact(s.rate)}/s ETA ${eta(s)}`,
    batchesText(s.batches),
    `tokens ${compact(s.tokensIn)} in ${compact(s.tokensOut)} out`,
  ];
  const sep = " | ";
  let text = counts;
  for (const seg of optional) {
    if (text.length + sep.length + seg.length > room) break;
    text += sep + seg;
  }
  const filled = s.total > 0 ? Math.round((done / s.total) * barWidth) : barWidth;
  return `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${text}`;
}

/** The non-terminal line. */
export function renderPlain(s: Snapshot): string {
  const done = s.succeeded + s.failed;
  return (
    `progress: ${fmt(done)}/${fmt(s.total)} lines (${fmt(s.succeeded)} ok, ${fmt(s.failed)} failed), ` +
    `${batchesText(s.batches)}, ${s.rate.toFixed(1)} lines/s, ETA ${eta(s)}, ` +
    `tokens ${fmt(s.tokensIn)} in ${fmt(s.tokensOut)} out`
  );
}

export class Progress {
  readonly #out: NodeJS.WritableStream & Partial<Pick<WriteStream, "isTTY" | "columns">>;
  readonly #snapshot: () => Snapshot;
  readonly #tty: boolean;
  #timer: NodeJS.Timeout | undefined;
  #drawn = false;

  constructor(
    out: NodeJS.WritableStream & Partial<Pick<WriteStream, "isTTY" | "columns">>,
    snapshot: () => Snapshot,
    intervalMs: number,
  ) {
    this.#out = out;
    this.#snapshot = snapshot;
    this.#tty = out.isTTY === true;
    this.#timer = setInterval(() => this.#draw(), this.#tty ? TTY_INTERVAL_MS : intervalMs);
    this.#timer.unref();
    if (this.#tty) this.#draw();
  }

  #draw(): void {
    const s = this.#snapshot();
    if (this.#tty) {
      this.#out.write(`\r\x1b[2K${renderBar(s, this.#out.columns ?? 80)}`);
      this.#drawn = true;
    } else {
      this.#out.write(`${renderPlain(s)}\n`);
    }
  }

  /** Clears the live line, so a message (or the summary) starts on a clean line. */
  clear(): void {
    if (this.#tty && this.#drawn) this.#out.write("\r\x1b[2K");
    this.#drawn = false;
  }

  /** Draws the last state once more (kept on screen) and stops. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#draw();
    if (this.#tty) this.#out.write("\n");
  }
}
