// --dry-run: what would be sent, per (endpoint, model), and how it would be split into batch files.
import type { InputScan } from "./input.js";

/** The provider's cap on lines per batch file. */
const MAX_LINES = 50_000;
/** A rough rule for English text: about four characters per token. */
const CHARS_PER_TOKEN = 4;

const fmt = (n: number) => n.toLocaleString("en-US");

export function renderPlan(
  inputName: string,
  scan: InputScan,
  limits: { batchSize: number; maxBatchBytes: number },
  skipped: number,
): string {
  const perFile = Math.min(limits.batchSize, MAX_LINES);
  const out = [`plan for ${inputName}: ${fmt(scan.lines)} lines, sha256 ${scan.sha256.slice(0, 12)}…`];
  if (skipped) out.push(`  ${fmt(skipped)} lines already in the output or errors file would be skipped`);
  let files = 0;
  let tokens = 0;
  for (const g of scan.groups) {
    // Lines of about the same size: the tighter of the two limits decides the file count.
    const byLines = Math.ceil(g.lines / perFile);
    const byBytes = Math.ceil(g.bytes / limits.maxBatchBytes);
    const n = Math.max(byLines, byBytes, 1);
    const est = Math.ceil(g.chars / CHARS_PER_TOKEN);
    files += n;
    tokens += est;
    out.push(
      `  ${g.endpoint}  model ${g.model}: ${fmt(g.lines)} lines, ${fmt(g.bytes)} bytes, ` +
        `~${fmt(est)} input tokens, ${n} batch file${n === 1 ? "" : "s"}`,
    );
  }
  out.push(`total: ${files} batch file${files === 1 ? "" : "s"}, ~${fmt(tokens)} input tokens (characters / 4)`);
  out.push("dry run: nothing was uploaded");
  return out.join("\n");
}
