// The lines printed when a run ends: counts, batches, tokens, time and where the files are.
export interface Totals {
  /** Lines succeeded / failed, this run and earlier ones together. */
  succeeded: number;
  failed: number;
  /** Of those, written by earlier runs of the same command. */
  resumed: number;
  /** Lines submitted again after a transient failure. */
  retried: number;
  /** Lines not submitted because their batch could not be created (left for a rerun). */
  unsent: number;
  total: number;
  batches: number;
  tokensIn: number;
  tokensOut: number;
  wallMs: number;
}

const fmt = (n: number) => n.toLocaleString("en-US");

export function renderSummary(t: Totals, files: { output: string; errors: string; state: string }): string {
  const lines = [
    `${fmt(t.succeeded)} succeeded, ${fmt(t.failed)} failed, ${fmt(t.retried)} retried, of ${fmt(t.total)} lines` +
      (t.resumed ? ` (${fmt(t.resumed)} from earlier runs)` : ""),
    `${fmt(t.batches)} batch${t.batches === 1 ? "" : "es"}, tokens ${fmt(t.tokensIn)} in / ${fmt(t.tokensOut)} out, ` +
      `${(t.wallMs / 1000).toFixed(1)} s`,
    `output: ${files.output}`,
    `errors: ${files.errors}`,
    `state:  ${files.state}`,
  ];
  if (t.unsent) lines.push(`${fmt(t.unsent)} lines could not be submitted; run the same command again to send them`);
  return lines.join("\n");
}
